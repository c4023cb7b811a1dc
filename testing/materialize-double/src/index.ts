/**
 * A Materialize wire-protocol test double: a loopback PostgreSQL-protocol server
 * that imitates the parts of Materialize FlowForge uses (simple queries,
 * transactions, `DECLARE … CURSOR FOR SUBSCRIBE`, `FETCH … WITH (timeout)`,
 * PROGRESS rows, AS OF / SNAPSHOT, cancellation), driven by a control API that
 * owns the clock (`apply` / `advance` / `commit`) and can misbehave on demand
 * (`dropConnections`, `stall`, `stop` / `restart`).
 *
 * A TEST FIXTURE (docs/decisions/005-materialize-wire-double.md): a private
 * workspace package that only tests, benchmarks and dev scripts depend on, never
 * a package's `src/` or the app. As a process of its own (src/cli.ts):
 *
 *   node testing/materialize-double/dist/cli.js --port 6875 --demo
 *
 * The semantics are specified in the shared spec (mz-double-spec.md); the time
 * model in short: `upper` is the first open timestamp, every time below it is
 * closed; `apply` stages updates at `upper`, `advance` closes it, subscribers
 * only ever see closed timestamps, consolidated.
 *
 * Parts: server.ts (listener, catalog, clock, control API), session.ts (one
 * connection's protocol), wire.ts (backend messages), sql.ts (tokenizer and
 * parser), dataflow.ts (views, history, subscriptions, progress), values.ts
 * (row values → PostgreSQL text).
 *
 * @packageDocumentation
 */
export type {
  DoubleColumn,
  DoubleColumnType,
  DoubleDiff,
  DoubleLimits,
  DoubleRow,
  DoubleSession,
  DoubleStats,
  MaterializeDouble,
  MaterializeDoubleOptions,
} from './api.js';
export { startMaterializeDouble } from './server.js';
