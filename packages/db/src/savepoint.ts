import { sql, type Transaction } from 'kysely';

let counter = 0;

/**
 * Runs `fn` inside a savepoint of an open transaction: when `fn` throws, only
 * its work is rolled back (the transaction goes on) and the error is rethrown.
 * This is the one way to nest: `withTransaction` inside a transaction refuses.
 *
 * @example
 * await database.withTenant(tenantId, async (trx) => {
 *   await trx.insertInto('dashboards').values({ name, created_by }).execute();
 *   await withSavepoint(trx, (sp) => importWidgets(sp)).catch(reportPartialImport);
 * });
 */
export async function withSavepoint<DB, T>(
  trx: Transaction<DB>,
  fn: (trx: Transaction<DB>) => Promise<T>,
): Promise<T> {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  const name = sql.id(`flowforge_sp_${counter}`);
  await sql`savepoint ${name}`.execute(trx);
  let result: T;
  try {
    result = await fn(trx);
  } catch (error) {
    await sql`rollback to savepoint ${name}`.execute(trx);
    throw error;
  }
  await sql`release savepoint ${name}`.execute(trx);
  return result;
}
