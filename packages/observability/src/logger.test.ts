import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { loadSettings } from '@flowforge/config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureLines } from '../test/log-capture.js';
import { bindRequestContext, runWithRequestContext } from './context.js';
import { createLogger } from './logger.js';

describe('createLogger', () => {
  it('writes JSON lines with an ISO time, a level label and the service', () => {
    const out = captureLines();
    createLogger({ service: 'canvas-api', destination: out.stream }).info({ a: 1 }, 'hello');
    const [line] = out.lines();
    expect(line).toMatchObject({ level: 'info', service: 'canvas-api', a: 1, msg: 'hello' });
    expect(String(line?.time)).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('honours the level', () => {
    const out = captureLines();
    const logger = createLogger({ level: 'warn', destination: out.stream });
    logger.info('quiet');
    logger.warn('loud');
    expect(out.lines().map((line) => line.msg)).toEqual(['loud']);
  });

  it('adds the request context to every line inside a request, and nothing outside', async () => {
    const out = captureLines();
    const logger = createLogger({ destination: out.stream });
    logger.info('before');
    await runWithRequestContext(
      { request_id: 'r-1', trace_id: 'a'.repeat(32), span_id: 'b'.repeat(16) },
      async () => {
        logger.info('start');
        await new Promise((resolve) => setTimeout(resolve, 1));
        bindRequestContext({ tenant_id: 'tenant-a', user_id: 'user-1' });
        logger.info({ extra: true }, 'bound');
      },
    );
    logger.info('after');
    const [before, start, bound, after] = out.lines();
    expect(before).not.toHaveProperty('request_id');
    expect(start).toMatchObject({
      request_id: 'r-1',
      trace_id: 'a'.repeat(32),
      span_id: 'b'.repeat(16),
    });
    expect(start).not.toHaveProperty('tenant_id');
    expect(bound).toMatchObject({
      request_id: 'r-1',
      tenant_id: 'tenant-a',
      user_id: 'user-1',
      extra: true,
    });
    expect(after).not.toHaveProperty('request_id');
  });

  it('does not write log fields back into the request context', () => {
    const out = captureLines();
    const logger = createLogger({ destination: out.stream });
    const requestContext = { request_id: 'r-2' };
    runWithRequestContext(requestContext, () => logger.info({ leaked: 'no' }, 'x'));
    expect(requestContext).toEqual({ request_id: 'r-2' });
  });
});

describe('redaction', () => {
  const values = {
    authorization: 'Bearer eyJ-AUTH-LEAKCHECK',
    proxy: 'Basic PROXY-LEAKCHECK',
    cookie: 'session=COOKIE-LEAKCHECK',
    setCookie: 'session=SETCOOKIE-LEAKCHECK',
    apiKey: 'ffk_APIKEY-LEAKCHECK',
    password: 'PASSWORD-LEAKCHECK',
    secret: 'SECRET-LEAKCHECK',
    token: 'TOKEN-LEAKCHECK',
  };

  it('removes every secret of a logged request, response and body', () => {
    const out = captureLines();
    const logger = createLogger({ destination: out.stream });
    const headers = {
      authorization: values.authorization,
      'proxy-authorization': values.proxy,
      cookie: values.cookie,
      'x-api-key': values.apiKey,
      'user-agent': 'curl/8',
    };
    logger.info({ req: { method: 'POST', url: '/login', headers } }, 'request');
    logger.info(
      { res: { statusCode: 200, headers: { 'set-cookie': values.setCookie } } },
      'response',
    );
    logger.info({ headers }, 'bare headers');
    logger.info({ request: { headers } }, 'request object');
    logger.info(
      { body: { username: 'ann', password: values.password, token: values.token } },
      'body',
    );
    logger.info(
      {
        password: values.password,
        secret: values.secret,
        token: values.token,
        apiKey: values.apiKey,
      },
      'top',
    );
    logger.info({ user: { password: values.password } }, 'user');
    logger.error(
      {
        err: {
          config: { headers: { Authorization: values.authorization } },
          response: { headers: { 'set-cookie': values.setCookie } },
        },
      },
      'axios-style error',
    );
    logger.info(
      { req: { query: { token: values.token } }, cookies: { session: values.cookie } },
      'query and cookies',
    );
    logger.info(
      { headers: { Authorization: values.authorization, 'X-Api-Key': values.apiKey } },
      'capitalised',
    );

    const text = out.text();
    for (const value of Object.values(values)) expect(text).not.toContain(value);
    // The kernel's marker, the one every FlowForge package writes.
    expect(text).toContain('"authorization":"[redacted]"');
    expect(text).not.toContain('[Redacted]');
    // What is not secret stays.
    expect(text).toContain('curl/8');
    expect(text).toContain('"username":"ann"');
  });

  it("redacts the config package's secrets, including a logged settings object", () => {
    const out = captureLines();
    const logger = createLogger({ destination: out.stream });
    const settings = loadSettings({
      APP_ENV: 'test',
      SECRET_KEY: 'SETTINGS-SECRET-LEAKCHECK',
      CLICKHOUSE_PASSWORD: 'CH-LEAKCHECK',
      METRICS_TOKEN: 'METRICS-LEAKCHECK',
      DATABASE_URL: 'postgres://u:DBPW-LEAKCHECK@127.0.0.1/x',
      REDIS_URL: 'redis://:REDISPW-LEAKCHECK@127.0.0.1:6379',
    });
    logger.info({ settings }, 'settings');
    logger.info({ clickhouse: settings.clickhouse, redis: settings.redis }, 'sections');
    logger.info(
      { secretKey: settings.secretKey, metricsToken: settings.observability.metricsToken },
      'copies',
    );
    logger.info(
      { SECRET_KEY: settings.secretKey, CLICKHOUSE_PASSWORD: settings.clickhouse.password },
      'env',
    );
    // Under keys whose redaction paths reach into the section (options.password, config.secretKey).
    logger.info({ options: settings.redis, config: settings }, 'nested under redacted holders');
    logger.info(
      { redis: settings.redis, database: settings.database, materialize: settings.materialize },
      'by name',
    );
    expect(out.text()).not.toContain('LEAKCHECK');
  });

  it('takes extra paths', () => {
    const out = captureLines();
    createLogger({ destination: out.stream, redact: ['card.number'] }).info({
      card: { number: '4111-LEAKCHECK' },
    });
    expect(out.text()).not.toContain('LEAKCHECK');
  });
});

describe('OpenTelemetry', () => {
  const manager = new AsyncLocalStorageContextManager();
  beforeAll(() => {
    context.setGlobalContextManager(manager.enable());
  });
  afterAll(() => {
    context.disable();
  });

  it('takes trace_id and span_id from the active span when the app uses @opentelemetry/api', () => {
    const out = captureLines();
    const logger = createLogger({ destination: out.stream, opentelemetry: { trace } });
    const spanContext = { traceId: 'c'.repeat(32), spanId: 'd'.repeat(16), traceFlags: 1 };
    const active = trace.setSpan(context.active(), trace.wrapSpanContext(spanContext));
    context.with(active, () => {
      logger.info('outside a request');
      runWithRequestContext(
        { request_id: 'r', trace_id: 'e'.repeat(32), span_id: 'f'.repeat(16) },
        () => logger.info('inside a request'),
      );
    });
    logger.info('no span');
    const [outside, inside, none] = out.lines();
    expect(outside).toMatchObject({ trace_id: 'c'.repeat(32), span_id: 'd'.repeat(16) });
    // The span is more specific than the traceparent the request came with.
    expect(inside).toMatchObject({
      request_id: 'r',
      trace_id: 'c'.repeat(32),
      span_id: 'd'.repeat(16),
    });
    expect(none).not.toHaveProperty('trace_id');
  });
});
