/**
 * The handle's life against the wire double: start (required and optional),
 * the background retry, health, authentication, close, and what may never
 * leak: the password.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics } from '@flowforge/observability';
import { createMaterialize, isMaterializeError } from '../src/index.js';
import { capturingLogger, everythingIn, freePort } from './support/fixtures.js';
import { Handles } from './support/handles.js';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import { eventually, iterationError, rejectionOf } from './support/streams.js';

const handles = new Handles();
const doubles: MaterializeDouble[] = [];

async function double(
  options: Parameters<typeof startMaterializeDouble>[0] = {},
): Promise<MaterializeDouble> {
  const started = await startMaterializeDouble(options);
  doubles.push(started);
  return started;
}

afterEach(async () => {
  await handles.closeAll();
  await Promise.all(doubles.splice(0).map((started) => started.stop()));
});

describe('createMaterialize', () => {
  it('throws NOT_CONFIGURED synchronously without a url, INVALID_OPTIONS for bad options', () => {
    let error: unknown;
    try {
      createMaterialize({ url: null });
    } catch (caught) {
      error = caught;
    }
    expect(isMaterializeError(error, 'NOT_CONFIGURED')).toBe(true);
    try {
      createMaterialize({ url: 'postgres://h/db', poolSize: 0 });
    } catch (caught) {
      error = caught;
    }
    expect(isMaterializeError(error, 'INVALID_OPTIONS')).toBe(true);
  });

  it('refuses a second live handle with the same name on one metrics registry', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const first = handles.open({ url: 'postgres://127.0.0.1:1/db', metrics, name: 'dup' });
    let error: unknown;
    try {
      handles.open({ url: 'postgres://127.0.0.1:1/db', metrics, name: 'dup' });
    } catch (caught) {
      error = caught;
    }
    expect(isMaterializeError(error, 'INVALID_OPTIONS')).toBe(true);
    await first.close();
    expect(() =>
      handles.open({ url: 'postgres://127.0.0.1:1/db', metrics, name: 'dup' }),
    ).not.toThrow();
  });
});

describe('start', () => {
  it('required: rejects UNAVAILABLE for a closed port', async () => {
    const port = await freePort();
    const mz = handles.open({ url: `postgres://materialize@127.0.0.1:${port}/materialize` });
    const error = await rejectionOf(mz.start());
    expect(isMaterializeError(error, 'UNAVAILABLE')).toBe(true);
    expect((error as { retryable: boolean }).retryable).toBe(true);
    expect(mz.status).toBe('unavailable');
  });

  it('optional: resolves, logs once, retries in the background and turns ready when the server comes', async () => {
    const port = await freePort();
    const { logger, lines } = capturingLogger();
    const mz = handles.open({
      url: `postgres://materialize@127.0.0.1:${port}/materialize`,
      optional: true,
      logger,
      reconnect: { initialDelayMs: 10, maxDelayMs: 40 },
    });
    await mz.start();
    expect(mz.status).toBe('unavailable');
    // A few background attempts fail meanwhile: still one warning.
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(mz.status).toBe('unavailable');
    await double({ port });
    await eventually(() => mz.status === 'ready', 'the background retry to succeed');
    const warnings = lines().filter((line) => line.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toMatch(/unavailable at start; retrying in the background/);
    expect(
      lines().some(
        (line) => line.level === 'debug' && /background check failed/.test(String(line.msg)),
      ),
    ).toBe(true);
    expect(
      lines().some((line) => line.level === 'info' && /available again/.test(String(line.msg))),
    ).toBe(true);
    await mz.health();
  });

  it('optional: close() stops the background retry', async () => {
    const port = await freePort();
    const mz = handles.open({
      url: `postgres://materialize@127.0.0.1:${port}/materialize`,
      optional: true,
      reconnect: { initialDelayMs: 10, maxDelayMs: 20 },
    });
    await mz.start();
    await mz.close();
    expect(mz.status).toBe('closed');
    const started = await double({ port });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(started.stats.connectionsOpened).toBe(0);
    expect(isMaterializeError(await rejectionOf(mz.start()), 'CLOSED')).toBe(true);
  });
});

describe('health', () => {
  it('is up, UNAVAILABLE when the server is gone, TIMEOUT when it hangs', async () => {
    const server = await double();
    const mz = handles.open({ url: server.url, connectTimeoutMs: 300 });
    expect((await mz.health()).status).toBe('up');
    expect(mz.status).toBe('ready');

    server.stall(true);
    const hung = await rejectionOf(mz.health());
    expect(isMaterializeError(hung, 'TIMEOUT', 'UNAVAILABLE')).toBe(true);
    server.stall(false);
    expect((await mz.health()).status).toBe('up');

    await server.stop();
    const gone = await rejectionOf(mz.health());
    expect(isMaterializeError(gone, 'UNAVAILABLE')).toBe(true);
    expect(mz.status).toBe('unavailable');
    await server.restart();
    expect((await mz.health()).status).toBe('up');
    expect(mz.status).toBe('ready');
  });

  it('TIMEOUT on a connection that stops answering after connecting', async () => {
    const server = await double();
    const mz = handles.open({ url: server.url, connectTimeoutMs: 300, poolSize: 1 });
    await mz.health();
    // The one pooled connection is idle and established: only SELECT 1 can hang now.
    server.stall(true);
    const error = await rejectionOf(mz.health());
    server.stall(false);
    expect(isMaterializeError(error, 'TIMEOUT')).toBe(true);
    // The hung connection was destroyed, not returned to the pool.
    expect((await mz.health()).status).toBe('up');
  });
});

describe('authentication and secrets', () => {
  const secret = 'Sup3r-Secret_pw!';

  it('a wrong password is AUTH_FAILED everywhere, and the password never shows', async () => {
    const server = await double({ password: 'the-right-one' });
    const { logger, text } = capturingLogger();
    const url = `postgres://materialize:${encodeURIComponent(secret)}@${server.host}:${server.port}/materialize`;
    const required = handles.open({ url, logger, name: 'auth-required' });
    const startError = await rejectionOf(required.start());
    expect(isMaterializeError(startError, 'AUTH_FAILED')).toBe(true);
    expect((startError as { sqlstate?: string }).sqlstate).toBe('28P01');
    const healthError = await rejectionOf(required.health());
    expect(isMaterializeError(healthError, 'AUTH_FAILED')).toBe(true);
    server.defineView('v', [{ name: 'a', type: 'text' }]);
    const streamError = await iterationError(required.subscribe('v'));
    expect(isMaterializeError(streamError, 'AUTH_FAILED')).toBe(true);

    const optional = handles.open({ url, logger, optional: true, name: 'auth-optional' });
    await optional.start();
    expect(optional.status).toBe('unavailable');

    for (const error of [startError, healthError, streamError]) {
      const all = everythingIn(error);
      expect(all).toContain('password authentication failed');
      expect(all).not.toContain(secret);
      expect(all).not.toContain(encodeURIComponent(secret));
      expect(JSON.stringify(error)).not.toContain(secret);
    }
    expect(text()).toContain('AUTH_FAILED');
    expect(text()).not.toContain(secret);
    expect(text()).not.toContain(encodeURIComponent(secret));
  });

  it('the right password works; it is in no log line', async () => {
    const server = await double({ password: secret });
    const { logger, text } = capturingLogger();
    const mz = handles.open({ url: server.url, logger });
    await mz.start();
    expect(mz.status).toBe('ready');
    await server.stop();
    await rejectionOf(mz.health());
    expect(text()).toContain('materialize: connected');
    expect(text()).not.toContain(secret);
    expect(text()).not.toContain(encodeURIComponent(secret));
  });
});

describe('close', () => {
  it('is idempotent and bounded even when the server hangs mid-FETCH', async () => {
    const server = await double();
    server.defineView('v', [{ name: 'a', type: 'text' }]);
    const mz = handles.open({ url: server.url, connectTimeoutMs: 200, fetchTimeoutMs: 60_000 });
    const iterator = mz.subscribe('v', { progress: true });
    await iterator.next();
    const pending = iterator.next();
    await eventually(
      () => server.sessions().some((session) => session.fetching),
      'a blocked FETCH',
    );
    server.stall(true);
    await Promise.all([mz.close(), mz.close()]);
    expect(isMaterializeError(await rejectionOf(pending), 'CLOSED')).toBe(true);
    server.stall(false);
    await eventually(() => server.stats.connectionsOpen === 0, 'every connection to be gone');
  });
});
