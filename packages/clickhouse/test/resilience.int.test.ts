/**
 * Engines: a private clickhouse-server 18.16 started by this file
 * (test/support/clickhouse-server.ts: its own dir, ports and users, killed and
 * removed in afterAll), plus loopback stand-ins for what a real server cannot
 * be made to do on demand: a port nobody listens on, a server that accepts and
 * never answers, and one that stops halfway through a body. The shared server
 * on 8123 is never touched here.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createClickHouse, type ClickHouse, type ClickHouseOptions } from '../src/index.js';
import { consume, expectCode } from './support/assert.js';
import { ClickHouseServer, type ServerUser } from './support/clickhouse-server.js';

const handles: ClickHouse[] = [];
afterAll(async () => {
  for (const handle of handles) await handle.close();
});

function open(options: ClickHouseOptions): ClickHouse {
  const handle = createClickHouse({ requestTimeoutMs: 10_000, ...options });
  handles.push(handle);
  return handle;
}

/**
 * An uncaught exception or unhandled rejection would take a server process
 * down: recording them makes "the process survives" an assertion of each test.
 */
const processErrors: unknown[] = [];
const record = (error: unknown): void => {
  processErrors.push(error);
};
beforeEach(() => {
  processErrors.length = 0;
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
});
afterEach(() => {
  process.off('uncaughtException', record);
  process.off('unhandledRejection', record);
});

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function waitFor(condition: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('nobody listening (connection refused)', () => {
  it('rejects with UNAVAILABLE at once, not at the deadline', async () => {
    const probe = net.createServer();
    const port = await listen(probe);
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    // A 60 s deadline and vitest's 20 s test timeout: only a fast refusal passes.
    const handle = open({ url: `http://127.0.0.1:${port}`, requestTimeoutMs: 60_000 });
    const error = await expectCode(handle.query('SELECT 1'), 'UNAVAILABLE');
    expect((error.cause as { code?: string }).code).toBe('ECONNREFUSED');
    expect(error.retryable).toBe(true);
    await expectCode(handle.health(), 'UNAVAILABLE');
    expect(processErrors).toEqual([]);
  });
});

describe('a server that accepts and never answers', () => {
  const held = new Set<net.Socket>();
  const silent = net.createServer((socket) => {
    held.add(socket);
    socket.resume();
    socket.on('error', () => undefined);
    socket.on('close', () => held.delete(socket));
  });
  let port = 0;
  beforeAll(async () => {
    port = await listen(silent);
  });
  afterAll(async () => {
    const closed = new Promise<void>((resolve) => silent.close(() => resolve()));
    for (const socket of held) socket.destroy();
    await closed;
  });

  it('times out after timeoutMs with TIMEOUT, and closes its sockets', async () => {
    const handle = open({ url: `http://127.0.0.1:${port}`, requestTimeoutMs: 300 });
    const error = await expectCode(handle.query('SELECT 1'), 'TIMEOUT');
    expect(error.retryable).toBe(true);
    await expectCode(handle.health(), 'TIMEOUT');
    const queried = open({ url: `http://127.0.0.1:${port}`, parameterBinding: 'client' });
    await expectCode(queried.query('SELECT 1', undefined, { timeoutMs: 300 }), 'TIMEOUT');
    await waitFor(() => held.size === 0, 'the client to close its sockets');
    expect(processErrors).toEqual([]);
  });
});

describe('a server that stops in the middle of a body', () => {
  // Answers the first-use detection like an 18.16 readonly=1 user, and a KILL
  // QUERY at once (noting it), then sends the headers and one row of any other
  // query and goes silent.
  const sockets = new Set<net.Socket>();
  const kills: { sql: string; url: string }[] = [];
  const stalling = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      if (body.includes('system.settings')) {
        response.end('{"name":"readonly","value":"1","version":"18.16.1"}\n');
        return;
      }
      if (body.startsWith('KILL QUERY')) {
        kills.push({ sql: body, url: request.url ?? '' });
        response.end();
        return;
      }
      response.writeHead(200, { 'Content-Type': 'text/plain' });
      response.write('{"n":"1"}\n');
    });
  });
  stalling.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  let port = 0;
  beforeAll(async () => {
    port = await listen(stalling);
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => stalling.close(() => resolve()));
  });

  it('yields what arrived, then TIMEOUT at the deadline; the socket is closed, the query killed', async () => {
    const handle = open({ url: `http://127.0.0.1:${port}`, parameterBinding: 'client' });
    const rows: unknown[] = [];
    await expectCode(
      (async () => {
        for await (const row of handle.stream('SELECT n', undefined, {
          timeoutMs: 400,
          queryId: "stalled'1",
        })) {
          rows.push(row);
        }
      })(),
      'TIMEOUT',
    );
    expect(rows).toEqual([{ n: '1' }]);
    await waitFor(() => kills.length > 0, 'a KILL QUERY');
    await waitFor(() => sockets.size === 0, 'the stalled socket to be closed');
    // A readonly=1 user's query has no server-side deadline: the handle kills it,
    // with the id quoted as a string and the user's own readonly=1 as the only setting.
    expect(kills).toHaveLength(1);
    expect(kills[0]?.sql).toBe("KILL QUERY WHERE query_id = 'stalled\\'1' ASYNC");
    const settings = [...new URL(kills[0]!.url, 'http://x').searchParams.keys()].filter(
      (key) => key !== 'query_id',
    );
    expect(settings).toEqual(['readonly']);
    expect(processErrors).toEqual([]);
  });
});

describe('a private 18.16 server killed and restarted', () => {
  const users: ServerUser[] = [
    { name: 'full', password: 'full-pw', readonly: 0 },
    { name: 'switcher', password: 'switcher-pw', readonly: 0 },
    { name: 'phoenix', password: 'phoenix-pw', readonly: 0 },
    { name: 'loosened', password: 'loosened-pw', readonly: 1 },
    { name: 'second', password: 'second-pw', readonly: 2 },
    { name: 'loose1', password: 'loose1-pw', readonly: 1 },
    { name: 'loose2', password: 'loose2-pw', readonly: 2 },
    { name: 'onetwo', password: 'onetwo-pw', readonly: 1 },
  ];
  let server: ClickHouseServer | undefined;

  beforeAll(async () => {
    server = await ClickHouseServer.start(users);
    await rawQuery('default', '', 'CREATE TABLE default.notes (id UInt32) ENGINE = Memory');
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** A query as `user` straight over HTTP (for set-up and for watching the server), settings in order. */
  async function rawQuery(
    user: string,
    password: string,
    sql: string,
    settings: readonly [string, string][] = [],
  ): Promise<{ status: number; text: string }> {
    const url = new URL(server!.url);
    url.searchParams.set('user', user);
    url.searchParams.set('password', password);
    for (const [name, value] of settings) url.searchParams.append(name, value);
    const response = await fetch(url, {
      method: 'POST',
      body: sql,
      signal: AbortSignal.timeout(5_000),
    });
    return { status: response.status, text: await response.text() };
  }

  const userOf = (name: string): ServerUser => users.find((user) => user.name === name)!;
  const openAs = (name: string, options: Partial<ClickHouseOptions> = {}): ClickHouse =>
    open({ url: server!.url, user: name, password: userOf(name).password, ...options });

  /** Rewrites users.xml and waits until the server answers as `expected` for `name`. */
  async function reconfigure(next: ServerUser[], name: string, expected: string): Promise<void> {
    await server!.setUsers(next);
    await waitFor(async () => {
      const user = next.find((entry) => entry.name === name);
      const { text } = await rawQuery(
        name,
        user?.password ?? userOf(name).password,
        "SELECT value FROM system.settings WHERE name = 'readonly'",
      );
      return text.trim() === expected || (expected === 'gone' && /Code: 192/.test(text));
    }, `users.xml to apply (${name}: ${expected})`);
  }

  const withLevel = (names: readonly string[], readonly: 0 | 1 | 2): ServerUser[] =>
    users.map((user) => (names.includes(user.name) ? { ...user, readonly } : user));

  const notesExists = async (): Promise<string> =>
    (await rawQuery('default', '', 'EXISTS TABLE default.notes')).text.trim();

  it('a readonly=2 user: `profile` is refused before sending, and the readonly=2 sent last defeats it on the server', async () => {
    const handle = openAs('second');
    await expectCode(
      handle.query('DROP TABLE default.notes', undefined, { settings: { profile: 'readonly_0' } }),
      'INVALID_ARGUMENT',
    );
    expect(await notesExists()).toBe('1');
    // The hole, by hand: on 18.16 a profile setting re-applies readonly=0 for a readonly=2 user…
    const readonly = "SELECT value FROM system.settings WHERE name = 'readonly'";
    const bare = await rawQuery('second', 'second-pw', readonly, [['profile', 'readonly_0']]);
    expect(bare.text.trim()).toBe('0');
    // …and the readonly=2 the handle now sends last (the user's own level) closes it.
    const guarded = await rawQuery('second', 'second-pw', 'DROP TABLE default.notes', [
      ['profile', 'readonly_0'],
      ['readonly', '2'],
    ]);
    expect(guarded.text).toMatch(/^Code: 164,/);
    expect(await notesExists()).toBe('1');
    // What the handle sends that user: its own level, which the server takes.
    await expect(handle.query<{ value: string }>(readonly)).resolves.toEqual([{ value: '2' }]);
  });

  it(
    'profiles loosened to readonly=0 at runtime, within the default detectionTtlMs: writes are still refused',
    { timeout: 60_000 },
    async () => {
      const one = openAs('loose1');
      const two = openAs('loose2');
      for (const handle of [one, two]) {
        await expectCode(handle.query('DROP TABLE default.notes'), 'READONLY');
      }
      await server!.setUsers(withLevel(['loose1', 'loose2'], 0));
      for (const name of ['loose1', 'loose2']) {
        await waitFor(
          async () =>
            (
              await rawQuery(
                name,
                userOf(name).password,
                "SELECT value FROM system.settings WHERE name = 'readonly'",
              )
            ).text.trim() === '0',
          `users.xml to apply (${name}: 0)`,
        );
      }
      // The handles still trust the levels they detected (1 and 2), and each
      // query carries that level: the server refuses, the table stays.
      for (const handle of [one, two]) {
        const error = await expectCode(handle.query('DROP TABLE default.notes'), 'READONLY');
        expect(error.serverCode).toBe(164);
        await expectCode(handle.query('INSERT INTO default.notes VALUES (7)'), 'READONLY');
      }
      expect(await notesExists()).toBe('1');
      expect((await rawQuery('default', '', 'SELECT count() FROM default.notes')).text.trim()).toBe(
        '0',
      );
      await server!.setUsers(users);
    },
  );

  it(
    'a profile loosened from readonly=1 to 2 at runtime: one READONLY, then the handle re-detects and reads',
    { timeout: 60_000 },
    async () => {
      const handle = openAs('onetwo');
      const readonlyOf = async (): Promise<string> =>
        (
          await handle.query<{ value: string }>(
            "SELECT value FROM system.settings WHERE name = 'readonly'",
          )
        )[0]!.value;
      expect(await readonlyOf()).toBe('1');
      await reconfigure(withLevel(['onetwo'], 2), 'onetwo', '2');
      // readonly=1 is a change now, which readonly=2 refuses ("Setting 'readonly' cannot be overrided")…
      const error = await expectCode(readonlyOf(), 'READONLY');
      expect(error.serverCode).toBe(164);
      // …and that drops what the handle knew: it detects 2 and reads.
      expect(await readonlyOf()).toBe('2');
      await server!.setUsers(users);
    },
  );

  it('a server killed mid-stream: UNAVAILABLE, the process survives, and the same handle works once it is back', async () => {
    const handle = openAs('full');
    let rows = 0;
    const error = await expectCode(
      consume(
        handle.stream('SELECT number FROM system.numbers', undefined, { timeoutMs: 60_000 }),
        async (count) => {
          rows = count;
          if (count === 10_000) await server!.kill();
        },
      ),
      'UNAVAILABLE',
    );
    expect(rows).toBeGreaterThanOrEqual(10_000);
    expect(error.retryable).toBe(true);

    // Down: refused at once.
    await expectCode(handle.health(), 'UNAVAILABLE');
    await server!.restart();
    await expect(handle.health()).resolves.toMatchObject({ status: 'up' });
    await expect(handle.query('SELECT count() AS n FROM default.notes')).resolves.toEqual([
      { n: '0' },
    ]);
    expect(processErrors).toEqual([]);
  });

  it('a server killed while a query waits for it: UNAVAILABLE', async () => {
    const handle = openAs('full');
    await handle.health();
    const running = handle.query('SELECT sleep(3)', undefined, { timeoutMs: 60_000 });
    await waitFor(
      async () =>
        (
          await rawQuery(
            'default',
            '',
            "SELECT count() FROM system.processes WHERE query LIKE 'SELECT sleep(3)%'",
          )
        ).text.trim() === '1',
      'the query to run',
    );
    const outcome = expectCode(running, 'UNAVAILABLE'); // handled before it rejects
    await server!.kill();
    await outcome;
    await server!.restart();
    await expect(handle.health()).resolves.toMatchObject({ status: 'up' });
    expect(processErrors).toEqual([]);
  });

  it(
    'a profile tightened to readonly=1 at runtime: one READONLY, then the handle re-detects and reads',
    { timeout: 60_000 },
    async () => {
      const handle = openAs('switcher');
      const readonlyOf = async (): Promise<string> =>
        (
          await handle.query<{ value: string }>(
            "SELECT value FROM system.settings WHERE name = 'readonly'",
          )
        )[0]!.value;
      expect(await readonlyOf()).toBe('2'); // readonly=0 user: the handle's readonly=2

      const tightened = users.map((user) =>
        user.name === 'switcher' ? { ...user, readonly: 1 as const } : user,
      );
      await reconfigure(tightened, 'switcher', '1');
      // Still sending readonly=2: the server refuses the setting itself…
      const error = await expectCode(readonlyOf(), 'READONLY');
      expect(error.serverCode).toBe(164);
      expect(error.message).toMatch(/setting/);
      // …which drops what the handle knew: the next query sends nothing and reads.
      expect(await readonlyOf()).toBe('1');
      await server!.setUsers(users);
    },
  );

  it(
    'a user recreated with another profile: AUTH_FAILED meanwhile, then re-detected',
    { timeout: 60_000 },
    async () => {
      const handle = openAs('phoenix');
      await expect(handle.query('SELECT 1 AS x')).resolves.toEqual([{ x: 1 }]);

      await reconfigure(
        users.filter((user) => user.name !== 'phoenix'),
        'phoenix',
        'gone',
      );
      const error = await expectCode(handle.query('SELECT 1 AS x'), 'AUTH_FAILED');
      expect(error.serverCode).toBe(192);

      const recreated = users.map((user) =>
        user.name === 'phoenix' ? { ...user, readonly: 1 as const } : user,
      );
      await reconfigure(recreated, 'phoenix', '1');
      // Without re-detection it would still send readonly=2, which a readonly=1 user refuses.
      await expect(handle.query('SELECT 1 AS x')).resolves.toEqual([{ x: 1 }]);
      await server!.setUsers(users);
    },
  );

  it(
    'detectionTtlMs: 0 notices a profile loosened to readonly=0 before the next write',
    { timeout: 60_000 },
    async () => {
      const handle = openAs('loosened', { detectionTtlMs: 0 });
      await expectCode(handle.query('INSERT INTO default.notes VALUES (1)'), 'READONLY');

      const loosened = users.map((user) =>
        user.name === 'loosened' ? { ...user, readonly: 0 as const } : user,
      );
      await reconfigure(loosened, 'loosened', '0');
      const error = await expectCode(
        handle.query('INSERT INTO default.notes VALUES (2)'),
        'READONLY',
      );
      expect(error.serverCode).toBe(164);
      expect((await rawQuery('default', '', 'SELECT count() FROM default.notes')).text.trim()).toBe(
        '0',
      );
      await server!.setUsers(users);
    },
  );
});
