export { createDatabase } from './database.js';
export type { Database, DatabaseHealth, DatabaseOptions, TransactionOptions } from './database.js';
export { withSavepoint } from './savepoint.js';
export { assertTenantId, isTenantId, DEFAULT_APP_ROLE, TENANT_SETTING } from './tenant.js';
export type { TenantScoped } from './tenant.js';
export {
  coreMigrations,
  createTenantTable,
  defineMigrationSource,
  disableTenantIsolation,
  enableTenantIsolation,
  migrateDown,
  migrateToLatest,
  migrationHistories,
  migrationStatus,
  APP_MIGRATION_SOURCE,
  APP_MIGRATION_TABLE,
  CURRENT_TENANT_FUNCTION,
} from './migrations.js';
export type {
  Migration,
  Migrations,
  MigrationSource,
  MigrateOptions,
  MigrationHistory,
  MigrationRun,
  MigrationState,
  TenantTableOptions,
} from './migrations.js';
export { DatabaseError, isDatabaseError } from './errors.js';
export type { DatabaseErrorCode, DatabaseErrorDetails } from './errors.js';
export { tenantIsolationProblems } from './inspect.js';
export type { TenantIsolationProblem } from './inspect.js';
