export { createClickHouse } from './clickhouse.js';
export type {
  ClickHouse,
  ClickHouseDriver,
  ClickHouseHealth,
  ClickHouseOptions,
  QueryOptions,
  QueryParams,
  QuerySettings,
} from './clickhouse.js';
export { ClickHouseError, isClickHouseError } from './errors.js';
export type { ClickHouseErrorCode, ClickHouseErrorDetails } from './errors.js';
