/* eslint-disable @typescript-eslint/no-unsafe-member-access --
   response bodies are untyped JSON; the assertions are what check their shape */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '@flowforge/auth';
import { dayBefore } from './clickhouse.js';
import { createEmbedFixture, type EmbedFixture } from './fixture.js';
import { freePort, get, getRaw, type Answer } from './http.js';

/** What an app under test is started with. */
export interface EmbedStores {
  /**
   * The environment to read its settings from (`loadSettings(env)` of
   * @flowforge/config), naming its stores as a deployment does; a store the
   * case leaves out is absent from it.
   */
  readonly env: Readonly<Record<string, string>>;
}

/** An app serving the embed surface, listening. */
export interface EmbedAppUnderTest {
  /** Where it listens, e.g. `http://127.0.0.1:41234`. */
  readonly baseUrl: string;
  /** Stops it and closes its stores. */
  close(): Promise<unknown>;
}

/** Boots the app under test against `stores`; called once per group of cases. */
export type StartEmbedApp = (stores: EmbedStores) => Promise<EmbedAppUnderTest>;

const DATA = (id: string): string => `/embed/v1/widgets/${id}/data`;
const ROUTE_LABEL = 'route="/embed/v1/widgets/:id/data"';

/** The app as one group of cases talks to it. */
interface Served {
  /** GET `path`, with `key` in X-API-Key when given; every answer's envelope is checked. */
  get(path: string, key?: string, headers?: Readonly<Record<string, string>>): Promise<Answer>;
  /** GET /health/ready with the scrape token, so that each check is shown. */
  ready(): Promise<Answer>;
  readonly baseUrl: string;
}

/**
 * The embed contract, `GET /embed/v1/widgets/:id/data` with an API key and the
 * service routes around it, as one suite that every app serving it runs:
 * `describeEmbedContract('embed-express', start)`. It seeds its own databases
 * ({@link createEmbedFixture}) and calls `start` for each group of cases with
 * the stores that group needs (all of them; no Redis; no or a dead ClickHouse;
 * no database). Every response is checked for X-Request-ID, every error for a
 * problem+json body carrying the same request id.
 */
export function describeEmbedContract(name: string, start: StartEmbedApp): void {
  describe(`the embed contract: ${name}`, () => {
    let fixture: EmbedFixture;
    beforeAll(async () => {
      fixture = await createEmbedFixture();
    });
    afterAll(async () => {
      await fixture?.drop();
    });

    /** Starts the app for the cases of the enclosing describe, with the stores `envOf` names. */
    function serving(
      envOf: (env: Readonly<Record<string, string>>) => Promise<Record<string, string>>,
    ): Served {
      let app: EmbedAppUnderTest | undefined;
      beforeAll(async () => {
        app = await start({ env: await envOf(fixture.env) });
      });
      afterAll(async () => {
        await app?.close();
      });
      const baseUrl = (): string => {
        if (app === undefined) throw new Error('the app under test did not start');
        return app.baseUrl;
      };
      return {
        get: (path, key, headers = {}) =>
          get(baseUrl(), path, key === undefined ? headers : { ...headers, 'x-api-key': key }),
        // Each check is shown only with the scrape token (METRICS_TOKEN).
        ready: () =>
          get(baseUrl(), '/health/ready', { authorization: `Bearer ${fixture.metricsToken}` }),
        get baseUrl() {
          return baseUrl();
        },
      };
    }

    const without =
      (...names: string[]) =>
      (env: Readonly<Record<string, string>>): Promise<Record<string, string>> =>
        Promise.resolve(
          Object.fromEntries(Object.entries(env).filter(([variable]) => !names.includes(variable))),
        );

    describe('with every store', () => {
      const app = serving(without());

      it("serves a widget in the key's scope from ClickHouse, then from the Redis cache", async () => {
        const { widgets, keys, today } = fixture;
        const first = await app.get(DATA(widgets.orders), keys.tenantA);
        expect(first.status).toBe(200);
        expect(first.headers.get('content-type')).toMatch(/^application\/json/);
        expect(first.body).toEqual({
          widget_id: widgets.orders,
          metric: 'orders',
          days: 7,
          // Tenant A's rows within 7 days, summed per day, oldest first.
          points: [
            { day: dayBefore(today, 2), value: 7 },
            { day: today, value: 5 },
          ],
          cached: false,
        });
        const second = await app.get(DATA(widgets.orders), keys.tenantA);
        expect(second.status).toBe(200);
        expect(second.body).toEqual({ ...first.body, cached: true });
        // An id in upper case is the same widget (and the same cache entry).
        const upper = await app.get(DATA(widgets.orders.toUpperCase()), keys.tenantA);
        expect(upper.status).toBe(200);
        expect(upper.body).toEqual(second.body);
      });

      it("refuses a widget outside the key's scope: 403 insufficient_scope, an ApiKey challenge", async () => {
        const refused = await app.get(DATA(fixture.widgets.outOfScope), fixture.keys.tenantA);
        expect(refused.status).toBe(403);
        expect(refused.headers.get('www-authenticate')).toMatch(
          /^ApiKey realm="flowforge", error="insufficient_scope"/,
        );
      });

      it('asks for a key when none is sent, and when a bearer token is sent instead: 401 ApiKey realm="flowforge"', async () => {
        const none = await app.get(DATA(fixture.widgets.orders));
        expect(none.status).toBe(401);
        expect(none.headers.get('www-authenticate')).toBe('ApiKey realm="flowforge"');
        // The embed route takes keys only: a token (any token) is no key.
        const bearer = await app.get(DATA(fixture.widgets.orders), undefined, {
          authorization: 'Bearer dev-token',
        });
        expect(bearer.status).toBe(401);
        expect(bearer.headers.get('www-authenticate')).toBe('ApiKey realm="flowforge"');
      });

      it('refuses an unknown, a tampered, a malformed and a revoked key: 401 invalid_token', async () => {
        const { keys, widgets, tenantA } = fixture;
        const refusedKeys = {
          unknown: generateApiKey(tenantA).key,
          tampered: `${keys.tenantA.slice(0, -5)}AAAAA`,
          malformed: 'not-a-key',
          revoked: keys.revoked,
        };
        for (const [what, key] of Object.entries(refusedKeys)) {
          const refused = await app.get(DATA(widgets.orders), key);
          expect(refused.status, what).toBe(401);
          expect(refused.headers.get('www-authenticate'), what).toMatch(
            /^ApiKey realm="flowforge", error="invalid_token"/,
          );
          expect(JSON.stringify(refused.body), what).not.toContain(key);
        }
      });

      it('refuses the key header sent twice: 400 invalid_request', async () => {
        const { keys, widgets } = fixture;
        const twice = await getRaw(app.baseUrl, DATA(widgets.orders), [
          'x-api-key',
          keys.tenantA,
          'x-api-key',
          keys.tenantB,
        ]);
        expect(twice.status).toBe(400);
        expect(twice.headers['www-authenticate']).toMatch(/error="invalid_request"/);
      });

      it('answers a widget id that is not a UUID with a 400 problem, before any scope check', async () => {
        // urn:uuid:… passes Ajv's uuid format; @flowforge/widgets refuses it all the same.
        for (const id of [
          'not-a-uuid',
          '1234',
          `${fixture.widgets.orders}0`,
          `urn:uuid:${fixture.widgets.orders}`,
        ]) {
          const refused = await app.get(DATA(id), fixture.keys.tenantA);
          expect(refused.status, id).toBe(400);
          expect(refused.headers.get('content-type'), id).toMatch(/^application\/problem\+json/);
        }
      });

      it('answers 404 "No widget with this id." for a widget in scope that no longer exists', async () => {
        const gone = await app.get(DATA(fixture.widgets.deleted), fixture.keys.tenantA);
        expect(gone.status).toBe(404);
        expect(gone.body.detail).toBe('No widget with this id.');
      });

      it("answers the same 404 for another tenant's widget even in the key's scope, and shows none of its rows", async () => {
        const { widgets, keys, today } = fixture;
        const foreign = await app.get(DATA(widgets.ofTenantB), keys.tenantA);
        expect(foreign.status).toBe(404);
        expect(foreign.body.detail).toBe('No widget with this id.');
        // Its own tenant's key reads it, and only that tenant's rows.
        const own = await app.get(DATA(widgets.ofTenantB), keys.tenantB);
        expect(own.status).toBe(200);
        expect(own.body).toMatchObject({
          metric: 'orders',
          days: 1,
          points: [{ day: today, value: 99 }],
        });
      });

      it('answers 409 for a live widget: it has no data to read, only a stream', async () => {
        const live = await app.get(DATA(fixture.widgets.live), fixture.keys.tenantA);
        expect(live.status).toBe(409);
        expect(live.body.detail).toContain('stream');
      });

      it("keeps the caller's X-Request-ID, on data and on problems alike", async () => {
        const id = `contract-${Date.now()}`;
        const data = await app.get(DATA(fixture.widgets.orders), fixture.keys.tenantA, {
          'x-request-id': id,
        });
        expect(data.headers.get('x-request-id')).toBe(id);
        const problem = await app.get(DATA(fixture.widgets.orders), undefined, {
          'x-request-id': id,
        });
        expect(problem.status).toBe(401);
        expect(problem.body.request_id).toBe(id);
      });

      it('GET /health/ready shows each dependency’s status without the scrape token, never its error or latency: a driver message names hosts', async () => {
        for (const headers of [{}, { authorization: 'Bearer wrong' }]) {
          const bare = await app.get('/health/ready', undefined, headers);
          expect(bare.status).toBe(200);
          const { checks } = bare.body as { checks: Record<string, Record<string, unknown>> };
          expect(checks.postgres).toEqual({ status: 'up', required: true });
          for (const check of Object.values(checks)) {
            expect(Object.keys(check).sort()).toEqual(['required', 'status']);
          }
        }
      });

      it('GET /health/live is 200; GET /health/ready is 200 with postgres, clickhouse and redis up', async () => {
        expect((await app.get('/health/live')).status).toBe(200);
        const ready = await app.ready();
        expect(ready.status).toBe(200);
        // Ready, or degraded by a dependency outside the embed path (the identity provider).
        expect(['ready', 'degraded']).toContain((ready.body as { status: string }).status);
        expect(ready.body).toMatchObject({
          checks: {
            postgres: { status: 'up', required: true },
            clickhouse: { status: 'up' },
            redis: { status: 'up' },
          },
        });
      });

      it('GET /metrics needs the token (401 problem), and with it counts embed requests and refused keys', async () => {
        await app.get(DATA(fixture.widgets.orders), 'not-a-key');
        for (const headers of [{}, { authorization: 'Bearer wrong' }]) {
          const refused = await app.get('/metrics', undefined, headers);
          expect(refused.status).toBe(401);
          expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer realm=/);
        }
        const scraped = await app.get('/metrics', undefined, {
          authorization: `Bearer ${fixture.metricsToken}`,
        });
        expect(scraped.status).toBe(200);
        expect(scraped.headers.get('content-type')).toMatch(/^text\/plain/);
        expect(scraped.text).toMatch(
          new RegExp(`flowforge_http_requests_total\\{[^}]*${ROUTE_LABEL}[^}]*\\} [1-9]`),
        );
        expect(scraped.text).toMatch(
          /flowforge_auth_failures_total\{reason="api_key_invalid"\} [1-9]/,
        );
      });

      it('answers a route that does not exist with a 404 problem', async () => {
        const paths = [
          '/no/such/route',
          '/embed/v1/widgets',
          // One URL per resource: no alias with a trailing slash.
          `${DATA(fixture.widgets.orders)}/`,
        ];
        for (const path of paths) {
          const missing = await app.get(path, fixture.keys.tenantA);
          expect(missing.status, path).toBe(404);
        }
      });
    });

    describe('without Redis (REDIS_URL unset)', () => {
      const app = serving(without('REDIS_URL'));

      it('serves the data from ClickHouse every time; readiness lists redis as not configured', async () => {
        for (let read = 0; read < 2; read += 1) {
          const data = await app.get(DATA(fixture.widgets.visits), fixture.keys.tenantA);
          expect(data.status).toBe(200);
          expect(data.body).toMatchObject({
            points: [{ day: dayBefore(fixture.today, 1), value: 50 }],
            cached: false,
          });
        }
        const ready = await app.ready();
        expect(ready.status).toBe(200);
        expect(ready.body.checks.redis).toMatchObject({
          status: 'not_configured',
          detail: 'set REDIS_URL',
        });
      });
    });

    describe('without ClickHouse (CLICKHOUSE_URL unset)', () => {
      const app = serving(without('CLICKHOUSE_URL'));

      it('answers 503 naming CLICKHOUSE_URL, Retry-After 60; readiness lists it as not configured', async () => {
        const data = await app.get(DATA(fixture.widgets.orders), fixture.keys.tenantA);
        expect(data.status).toBe(503);
        expect(data.body.detail).toContain('CLICKHOUSE_URL');
        expect(data.headers.get('retry-after')).toBe('60');
        // The scope is checked before the store is needed.
        expect((await app.get(DATA(fixture.widgets.outOfScope), fixture.keys.tenantA)).status).toBe(
          403,
        );
        const ready = await app.ready();
        expect(ready.status).toBe(200);
        expect(ready.body.checks.clickhouse).toMatchObject({
          status: 'not_configured',
          detail: 'set CLICKHOUSE_URL',
        });
      });
    });

    describe('with ClickHouse down (and no cache to hide it)', () => {
      let deadPort = 0;
      const app = serving(async (env) => {
        deadPort = await freePort();
        return {
          ...(await without('REDIS_URL')(env)),
          CLICKHOUSE_URL: `http://127.0.0.1:${deadPort}`,
          CLICKHOUSE_REQUEST_TIMEOUT_MS: '2000',
        };
      });

      it('answers 503 with Retry-After that does not describe the server; readiness is degraded, not unready', async () => {
        const data = await app.get(DATA(fixture.widgets.orders), fixture.keys.tenantA);
        expect(data.status).toBe(503);
        expect(data.headers.get('retry-after')).toBe('1');
        expect(data.text).not.toContain(String(deadPort));
        const ready = await app.ready();
        expect(ready.status).toBe(200);
        expect(ready.body).toMatchObject({
          status: 'degraded',
          checks: { clickhouse: { status: 'down' }, postgres: { status: 'up' } },
        });
      });
    });

    describe('without a database (DATABASE_URL unset)', () => {
      const app = serving(without('DATABASE_URL'));

      it('answers a request with a key 503 naming DATABASE_URL (an operator must act: Retry-After 60)', async () => {
        const data = await app.get(DATA(fixture.widgets.orders), fixture.keys.tenantA);
        expect(data.status).toBe(503);
        expect(data.body.detail).toContain('DATABASE_URL');
        expect(data.headers.get('retry-after')).toBe('60');
      });

      it('answers a request without a key 401 all the same: the credential is checked first', async () => {
        const data = await app.get(DATA(fixture.widgets.orders));
        expect(data.status).toBe(401);
        expect(data.headers.get('www-authenticate')).toBe('ApiKey realm="flowforge"');
      });

      it('is not ready: no key can be checked without the database', async () => {
        const ready = await app.ready();
        expect(ready.status).toBe(503);
        expect(ready.body).toMatchObject({
          status: 'not_ready',
          checks: {
            postgres: { status: 'not_configured', required: true, detail: 'set DATABASE_URL' },
          },
        });
      });
    });
  });
}
