import { sql, type Kysely } from 'kysely';
import { CURRENT_TENANT_FUNCTION } from './migrations.js';
import { toDatabaseError } from './internal/sqlstate.js';

/** One thing wrong with a tenant-scoped table. */
export interface TenantIsolationProblem {
  /** The table (or view) in the inspected schema. */
  readonly table: string;
  /** What is wrong, in words, e.g. `row-level security is not forced (the table owner bypasses it)`. */
  readonly problem: string;
}

interface TableRow {
  table: string;
  oid: number;
  attnum: number;
  type: string;
  notnull: boolean;
  rls: boolean;
  forced: boolean;
}

interface IndexRow {
  name: string;
  unique: boolean;
  primary: boolean;
  keys: number[];
  generated: boolean;
}

interface ForeignKeyRow {
  name: string;
  keys: number[];
  refs: number[];
  refTenant: number | null;
}

interface PolicyRow {
  name: string;
  permissive: boolean;
  cmd: string;
  qual: string | null;
  check: string | null;
}

/**
 * Walks pg_catalog and lists what is wrong with tenant isolation in `schema`.
 * Every table with a `tenant_id` column must have it `uuid NOT NULL`, an index
 * led by it, row-level security enabled and forced (else the owner bypasses
 * it), a policy for all commands whose USING and WITH CHECK are exactly
 * `(tenant_id = flowforge_current_tenant())`, no other permissive policy
 * (policies OR together), foreign keys that pair `tenant_id` with the
 * referenced table's `tenant_id` (foreign keys bypass row-level security), and
 * no unique index that spans tenants (its 23505 tells one tenant that another's
 * value exists) unless it is a one-column primary key the server generates.
 * A view with a `tenant_id` column must be `security_invoker`; a materialized
 * one is always reported (it has no row-level security).
 *
 * Run it in your test suite after migrating: an empty list is the pass.
 */
export async function tenantIsolationProblems(
  db: Kysely<unknown>,
  schema = 'public',
): Promise<readonly TenantIsolationProblem[]> {
  try {
    return await inspect(db, schema);
  } catch (error) {
    throw toDatabaseError(error);
  }
}

async function inspect(db: Kysely<unknown>, schema: string): Promise<TenantIsolationProblem[]> {
  const problems: TenantIsolationProblem[] = [];
  const { rows: tables } = await sql<TableRow>`
    select c.relname as table, c.oid::int as oid, a.attnum::int as attnum,
           format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as notnull,
           c.relrowsecurity as rls, c.relforcerowsecurity as forced
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
     where n.nspname = ${schema} and c.relkind in ('r', 'p')
     order by c.relname`.execute(db);
  const current = `${CURRENT_TENANT_FUNCTION}()`;
  for (const table of tables) {
    const report = (problem: string): void => {
      problems.push({ table: table.table, problem });
    };
    if (table.type !== 'uuid') report(`tenant_id is ${table.type}, not uuid`);
    if (!table.notnull) report('tenant_id is nullable');
    if (!table.rls) report('row-level security is not enabled');
    if (!table.forced) report('row-level security is not forced (the table owner bypasses it)');

    const { rows: indexes } = await sql<IndexRow>`
      select ic.relname as name, i.indisunique as unique, i.indisprimary as primary,
             string_to_array(i.indkey::text, ' ')::int[] as keys,
             coalesce((select pg_get_expr(d.adbin, d.adrelid) like 'gen_random_uuid()%'
                         from pg_attrdef d
                        where d.adrelid = i.indrelid and d.adnum = i.indkey[0]), false) as generated
        from pg_index i join pg_class ic on ic.oid = i.indexrelid
       where i.indrelid = ${table.oid}
       order by ic.relname`.execute(db);
    if (!indexes.some((index) => index.keys[0] === table.attnum)) {
      report('no index led by tenant_id');
    }
    for (const index of indexes) {
      if (!index.unique || index.keys.includes(table.attnum)) continue;
      if (index.primary && index.keys.length === 1 && index.generated) continue;
      report(`unique index ${index.name} spans tenants (its 23505 leaks existence)`);
    }

    const { rows: policies } = await sql<PolicyRow>`
      select p.polname as name, p.polpermissive as permissive, p.polcmd as cmd,
             pg_get_expr(p.polqual, p.polrelid) as qual,
             pg_get_expr(p.polwithcheck, p.polrelid) as check
        from pg_policy p where p.polrelid = ${table.oid}
       order by p.polname`.execute(db);
    // Exactly the tenant test: `… or true`, or `current_tenant() is not null`, mention
    // the function and still open the table.
    const exact = `(tenant_id = ${current})`;
    const scoped = (expression: string | null): boolean => expression === exact;
    if (!policies.some((p) => p.permissive && p.cmd === '*' && scoped(p.qual) && scoped(p.check))) {
      report(`no policy for all commands with USING and WITH CHECK exactly ${exact}`);
    }
    for (const policy of policies) {
      if (!policy.permissive) continue;
      // Permissive policies OR together: one that is not exactly the tenant test opens the table.
      if (
        (policy.qual !== null && !scoped(policy.qual)) ||
        (policy.check !== null && !scoped(policy.check))
      ) {
        report(`permissive policy ${policy.name} is not exactly the tenant test`);
      }
    }

    // Foreign keys are checked (and cascade) without row-level security: one that
    // does not pair tenant_id with tenant_id reaches, and reveals, other tenants' rows.
    const { rows: foreignKeys } = await sql<ForeignKeyRow>`
      select c.conname as name, c.conkey::int[] as keys, c.confkey::int[] as refs,
             (select a.attnum::int from pg_attribute a
               where a.attrelid = c.confrelid and a.attname = 'tenant_id' and not a.attisdropped) as "refTenant"
        from pg_constraint c
       where c.conrelid = ${table.oid} and c.contype = 'f'
       order by c.conname`.execute(db);
    for (const key of foreignKeys) {
      const position = key.keys.indexOf(table.attnum);
      if (position === -1 || key.refTenant === null || key.refs[position] !== key.refTenant) {
        report(`foreign key ${key.name} does not pair tenant_id with the referenced tenant_id`);
      }
    }
  }

  // Views and materialized views over tenant data: a materialized view has no
  // row-level security at all, and a view runs with its owner's rights.
  const { rows: views } = await sql<{ name: string; kind: string }>`
    select c.relname as name, c.relkind::text as kind
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
     where n.nspname = ${schema} and c.relkind in ('v', 'm')
       and not (c.relkind = 'v' and coalesce(c.reloptions @> array['security_invoker=true'], false))
     order by c.relname`.execute(db);
  for (const view of views) {
    problems.push({
      table: view.name,
      problem:
        view.kind === 'm'
          ? 'materialized view over tenant data has no row-level security'
          : "view over tenant data runs with its owner's rights (make it security_invoker)",
    });
  }
  return problems;
}
