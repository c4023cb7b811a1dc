// What the wrong-API-key throttle costs a client with a valid key, and what it saves when a
// client guesses: valid-key verifications/s with no throttle (the baseline), the in-memory
// throttle and the Redis-backed one, in one run; and how many of a burst of wrong keys sent
// at once reach PostgreSQL. On the PostgreSQL and Redis of scripts/services. See ../README.md.
//
// Usage: node auth/throttle.ts [--rounds 5] [--duration 2] [--concurrency 8] [--burst 1000]
import { randomBytes, randomUUID } from 'node:crypto';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  authMigrations,
  createApiKey,
  createApiKeyVerifier,
  createFailureThrottle,
  FAILURE_THROTTLE_PREFIX,
  type AuthDB,
  type FailureThrottle,
} from '@flowforge/auth';
import { loadSettings } from '@flowforge/config';
import { createDatabase, migrateToLatest } from '@flowforge/db';
import { createRedis } from '@flowforge/redis';
import {
  entryOf,
  machineLoad,
  median,
  perRound,
  positiveFlag,
  printTable,
  recordOf,
  rotated,
  spread,
  writeResults,
} from '../lib/harness.ts';
import { APP_LOGIN, OWNER, adminQuery, dropDatabase, pgUrl } from '../lib/postgres.ts';

const BASELINE = 'none';
const MODES = ['none', 'memory', 'redis'] as const;
type Mode = (typeof MODES)[number];
const WHAT: Readonly<Record<Mode, string>> = {
  none: 'verify() alone: one PostgreSQL transaction',
  memory: 'attempt, verify, forgive: counts in this process',
  redis: 'attempt, verify, forgive: counts in Redis (INCRBY, then INCRBY -1)',
};
const RESULTS = fileURLToPath(new URL('./throttle-results.json', import.meta.url));

const USAGE = `Usage: node auth/throttle.ts [options]

--concurrency loops verify one valid API key as fast as each is answered, for
--duration seconds, in three modes (${MODES.join(', ')}); then --burst wrong keys
are sent at once through each mode and the lookups that reached PostgreSQL counted.

Options:
  --rounds N       measurements per mode; medians are reported   (5)
  --duration S     seconds of each measurement                    (2)
  --concurrency N  concurrent verification loops                  (8)
  --burst N        wrong keys sent at once                        (1000)
  --help           this text`;

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    options: {
      rounds: { type: 'string', default: '5' },
      duration: { type: 'string', default: '2' },
      concurrency: { type: 'string', default: '8' },
      burst: { type: 'string', default: '1000' },
      help: { type: 'boolean', default: false },
    },
  });
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  const rounds = positiveFlag(flags, 'rounds', { integer: true });
  const durationMs = positiveFlag(flags, 'duration') * 1000;
  const concurrency = positiveFlag(flags, 'concurrency', { integer: true });
  const burst = positiveFlag(flags, 'burst', { integer: true });
  const loadBefore = os.loadavg();
  console.log(
    `${machineLoad(loadBefore)}; ${concurrency} loops, ${durationMs} ms, ${rounds} rounds`,
  );

  const name = `ff_bench_${randomBytes(4).toString('hex')}`;
  await adminQuery({ as: OWNER }, `create database ${name}`);
  const owner = createDatabase({ url: pgUrl(OWNER, name), poolSize: 1 });
  await migrateToLatest(owner.db, { packages: [authMigrations] }).finally(() => owner.close());
  const database = createDatabase<AuthDB>({ url: pgUrl(APP_LOGIN, name) });
  const redis = createRedis(
    loadSettings({ APP_ENV: 'test', REDIS_URL: 'redis://127.0.0.1:6379' }).redis,
  );
  try {
    const { key } = await createApiKey(database, randomUUID(), {
      name: 'bench',
      widgetIds: [],
      createdBy: randomUUID(),
    });
    const verifier = createApiKeyVerifier(database);
    const keyspace = `${FAILURE_THROTTLE_PREFIX}bench-${randomBytes(4).toString('hex')}:`;
    const throttleOf = (mode: Mode, max = 100_000): FailureThrottle | null =>
      mode === 'none'
        ? null
        : createFailureThrottle({
            max,
            windowSeconds: 60,
            store: mode === 'redis' ? redis.ownedKeyspace(keyspace) : null,
          });

    /** What the apiKey hooks do for one request of `client`. */
    async function once(
      throttle: FailureThrottle | null,
      client: string,
      apiKey: string,
    ): Promise<unknown> {
      try {
        await throttle?.attempt(client);
      } catch (refusal) {
        return refusal; // 429: no lookup
      }
      try {
        await verifier.verify(apiKey);
      } catch (error) {
        return error; // a wrong key keeps its point
      }
      await throttle?.forgive(client);
      return undefined;
    }

    async function measure(mode: Mode): Promise<number> {
      const throttle = throttleOf(mode);
      let done = 0;
      const started = performance.now();
      const until = started + durationMs;
      await Promise.all(
        Array.from({ length: concurrency }, async (_, loop) => {
          while (performance.now() < until) {
            const failed = await once(throttle, `198.51.100.${loop}`, key);
            if (failed !== undefined) throw failed as Error;
            done += 1;
          }
        }),
      );
      return done / ((performance.now() - started) / 1000);
    }

    for (const mode of MODES) await measure(mode); // warm the pools and the JIT
    const runs: Record<Mode, number>[] = [];
    for (let round = 0; round < rounds; round += 1) {
      const measured = {} as Record<Mode, number>;
      for (const mode of rotated(MODES, round)) measured[mode] = await measure(mode);
      runs.push(measured);
    }

    // A guesser's burst: every request at once, as an attacker sends them.
    const wrong = `ffk_${randomUUID().replaceAll('-', '')}_${'A'.repeat(43)}`;
    const lookups = recordOf(MODES, () => 0);
    for (const mode of MODES) {
      const throttle = throttleOf(mode, 10);
      const outcomes = await Promise.all(
        Array.from({ length: burst }, () => once(throttle, '203.0.113.1', wrong)),
      );
      lookups[mode] = outcomes.filter(
        (error) => (error as { code?: string }).code === 'API_KEY_INVALID',
      ).length;
    }

    const baseline = runs.map((run) => run[BASELINE]);
    const results = recordOf(MODES, (mode) => {
      const measured = runs.map((run) => run[mode]);
      return {
        what: WHAT[mode],
        verificationsPerSecond: median(measured),
        ratio: median(perRound(measured, baseline, (base, run) => run / base)),
        spread: spread(measured),
        lookupsOfBurst: entryOf(lookups, mode),
      };
    });
    printTable(
      ['mode', 'valid keys/s', `× ${BASELINE}`, 'spread', `lookups of ${burst} wrong at once`],
      MODES.map((mode) => {
        const result = entryOf(results, mode);
        return [
          mode,
          result.verificationsPerSecond.toFixed(0),
          result.ratio.toFixed(2),
          `±${(result.spread * 100).toFixed(0)}%`,
          String(result.lookupsOfBurst),
        ];
      }),
    );
    await writeResults(
      RESULTS,
      { loadBefore },
      { concurrency, durationMs, rounds, burst, results },
    );
  } finally {
    await database.close();
    await redis.close();
    await dropDatabase(OWNER, name);
  }
}

await main();
