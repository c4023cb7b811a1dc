import type { Kysely } from 'kysely';
import { describe, expect, it } from 'vitest';
import { DatabaseError } from './errors.js';
import {
  coreMigrations,
  defineMigrationSource,
  migrateDown,
  migrateToLatest,
  migrationStatus,
  type MigrateOptions,
  type Migrations,
} from './migrations.js';

const step: Migrations = { '0001-a': { up: () => Promise.resolve() } };
/** Never touched: options are checked before the first query. */
const db = new Proxy({} as Kysely<unknown>, {
  get: () => {
    throw new Error('the database was used');
  },
});

async function refusal(options: MigrateOptions): Promise<DatabaseError> {
  for (const run of [migrateToLatest, migrateDown, migrationStatus]) {
    const error = await run(db, options).then(
      () => undefined,
      (rejection: unknown) => rejection,
    );
    expect(error).toBeInstanceOf(DatabaseError);
    expect((error as DatabaseError).code).toBe('INVALID_OPTIONS');
  }
  return (await migrateToLatest(db, options).catch((error: unknown) => error)) as DatabaseError;
}

describe('defineMigrationSource', () => {
  it('names a frozen set of migrations', () => {
    const source = defineMigrationSource('acme_billing', step);
    expect(source).toEqual({ name: 'acme_billing', migrations: step });
    expect(Object.isFrozen(source)).toBe(true);
    expect(Object.isFrozen(source.migrations)).toBe(true);
  });

  it.each(['', 'Acme', '1acme', 'acme-billing', 'a'.repeat(51), 'app', 'kysely'])(
    'refuses the name %j',
    (name) => {
      expect(() => defineMigrationSource(name, step)).toThrow(
        expect.objectContaining({ code: 'INVALID_OPTIONS' }),
      );
    },
  );

  it('refuses a migration without an up function', () => {
    expect(() => defineMigrationSource('acme', { '0001-a': {} as never })).toThrow(
      /"0001-a" is not a migration/,
    );
  });

  it('core is the source flowforge_db', () => {
    expect(coreMigrations().name).toBe('flowforge_db');
    expect(Object.keys(coreMigrations().migrations)).toEqual(['0000-flowforge-db-0001-tenancy']);
  });
});

describe('migration options', () => {
  it('refuses packages that are not an array', async () => {
    const error = await refusal({ packages: defineMigrationSource('acme', step) as never });
    expect(error.message).toContain('`packages` must be an array');
  });

  it('refuses the same source twice, and a package named like core', async () => {
    const acme = defineMigrationSource('acme', step);
    expect((await refusal({ packages: [acme, acme] })).message).toContain('given twice');
    const fake = { name: 'flowforge_db', migrations: {} };
    expect((await refusal({ packages: [fake] })).message).toContain('given twice');
  });

  it('refuses a migration name used by two sources', async () => {
    const error = await refusal({
      packages: [defineMigrationSource('acme', step)],
      migrations: step,
    });
    expect(error.message).toContain('the migration 0001-a is in both acme and app');
  });

  it('refuses a package set spread into the app migrations, and says where it goes', async () => {
    const spread = { ...defineMigrationSource('acme', step) } as unknown as Migrations;
    const error = await refusal({ migrations: spread });
    expect(error.message).toMatch(/goes in `packages`, not spread into `migrations`/);
  });

  it('checks a plain object given as a package like defineMigrationSource does', async () => {
    const error = await refusal({ packages: [{ name: 'Bad Name', migrations: step }] });
    expect(error.message).toContain('lower-case identifier');
  });
});
