/**
 * Everything the browser suite runs against, started for one test file and torn
 * down by `close()`:
 * - a fresh PostgreSQL database with the app's migrations (test/support/postgres.ts);
 * - the Materialize wire double, a separate process (./double-process.ts);
 * - N instances of the BUILT app (`node dist/main.js`), each a process configured by
 *   its environment as scripts/demo configures one, but in production mode: the
 *   real Keycloak of scripts/services (realm flowforge) authenticates, Redis holds
 *   the stream tickets every instance redeems, PostgreSQL the dashboards and keys;
 * - the round-robin proxy in front of them, which also serves the test page on its own
 *   origin, and two static servers for pages of other origins: one the app allows
 *   (HTTP_CORS_ORIGINS), one it does not;
 * - headless Chromium.
 * Plain support code: no vitest imports.
 */
import { randomBytes } from 'node:crypto';
import {
  API_CLIENT,
  KEYCLOAK_REALM,
  KEYCLOAK_URL,
  KeycloakAdmin,
  TENANT_A,
  USERS,
  clientCredentialsGrant,
  createRealmCopy,
  passwordGrant,
  waitForKeycloak,
  type RealmCopy,
} from '../../../../../packages/auth/test/support/real-keycloak.js';
import { createMigratedDatabase } from '../../support/postgres.js';
import { launchBrowser, type Browser } from './browser.js';
import { testFiles } from './pages.js';
import { startApp, startDouble, type AppProcess, type DoubleProcess } from './processes.js';
import { startProxy, startStaticServer, type StaticServer, type TestProxy } from './proxy.js';

export { TENANT_A, USERS };

/** The Redis database (of the machine's server) the suite's instances share: tickets, throttle. */
const REDIS_DATABASE = 11;

/** What the cluster is started with. */
export interface ClusterOptions {
  /** App instances behind the proxy. */
  readonly instances: number;
  /** HTTP_STREAMS_PER_USER of every instance. */
  readonly streamsPerUser: number;
  /** SHUTDOWN_TIMEOUT_MS of every instance. */
  readonly shutdownTimeoutMs: number;
  /** The double adds an order every tickMs. */
  readonly tickMs: number;
  /** More environment for every instance. */
  readonly env?: Readonly<Record<string, string>>;
}

/** A JSON answer of the app. */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
}

export class Cluster {
  readonly options: ClusterOptions;
  database!: Awaited<ReturnType<typeof createMigratedDatabase>>;
  double!: DoubleProcess;
  /** Instance slots: `null` while one is stopped. Names are `app-<slot>`. */
  readonly instances: (AppProcess | null)[] = [];
  /** Every instance process ever started (for the teardown). */
  readonly #all: AppProcess[] = [];
  #ports: number[] = [];
  proxy!: TestProxy;
  /** A page origin the app allows. */
  allowed!: StaticServer;
  /** A page origin the app does not allow. */
  other!: StaticServer;
  browser!: Browser;
  readonly #realms: RealmCopy[] = [];
  readonly #secret = randomBytes(32).toString('hex');
  readonly #metricsToken = randomBytes(16).toString('hex');

  constructor(options: ClusterOptions) {
    this.options = options;
  }

  /** Starts everything; on a failure, stops what started and rethrows. */
  async start(): Promise<void> {
    try {
      await waitForKeycloak();
      this.database = await createMigratedDatabase('browser');
      this.double = await startDouble({ tenantId: TENANT_A, tickMs: this.options.tickMs });
      const files = testFiles();
      this.proxy = await startProxy(files);
      this.allowed = await startStaticServer(files);
      this.other = await startStaticServer(files);
      for (let slot = 0; slot < this.options.instances; slot += 1) await this.startInstance(slot);
      this.browser = await launchBrowser();
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /** The environment of an instance (PORT aside). */
  env(): Record<string, string> {
    return {
      APP_ENV: 'production',
      APP_NAME: 'flowforge-browser-test',
      HOST: '127.0.0.1',
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
      SECRET_KEY: this.#secret,
      METRICS_TOKEN: this.#metricsToken,
      DATABASE_URL: this.database.appUrl,
      DATABASE_POOL_SIZE: '4',
      // A database of its own: the wrong-API-key throttle counts per client address in Redis,
      // and the other test files, run at the same time from 127.0.0.1, fill database 0's.
      REDIS_URL: `redis://127.0.0.1:6379/${REDIS_DATABASE}`,
      MATERIALIZE_URL: this.double.url,
      KEYCLOAK_URL,
      KEYCLOAK_REALM,
      KEYCLOAK_CLIENT_ID: API_CLIENT.clientId,
      HTTP_CORS_ORIGINS: this.allowed.url,
      HTTP_STREAMS_PER_USER: String(this.options.streamsPerUser),
      SHUTDOWN_TIMEOUT_MS: String(this.options.shutdownTimeoutMs),
      ...this.options.env,
    };
  }

  /** Starts (or restarts, on its port) the instance of `slot` and puts it behind the proxy. */
  async startInstance(slot: number): Promise<AppProcess> {
    const app = await startApp(`app-${slot}`, this.env(), this.#ports[slot]);
    this.#ports[slot] = app.port;
    this.instances[slot] = app;
    this.#all.push(app);
    this.#updateUpstreams();
    return app;
  }

  /** The proxy forwards to every instance slot that has a port, running or not (it skips refusals). */
  #updateUpstreams(): void {
    this.proxy.setUpstreams(this.#ports.map((port, slot) => ({ name: `app-${slot}`, port })));
  }

  /** The instance slot an upstream name is. */
  slotOf(name: string | null): number {
    const slot = Number(name?.replace(/^app-/, ''));
    if (!Number.isInteger(slot) || this.instances[slot] === undefined)
      throw new Error(`no instance ${name}`);
    return slot;
  }

  /** Restarts the double on its port (after the test killed it), its orders continuing. */
  async restartDouble(): Promise<DoubleProcess> {
    const { port } = this.double;
    const rows = this.double.lastOrderId();
    await this.double.child.stop(2_000);
    this.double = await startDouble({
      tenantId: TENANT_A,
      tickMs: this.options.tickMs,
      port,
      rows,
    });
    return this.double;
  }

  /**
   * A copy of the test realm whose flowforge-api tokens live `lifespanSeconds` (the shared
   * realm's live 300 s, and must not change), and an instance of the app that trusts it,
   * outside the proxy. Its tokens are the service account's (tenant A, role editor): the
   * copy has no human users. Removed by `close()`.
   */
  async shortTokens(
    lifespanSeconds: number,
  ): Promise<{ app: AppProcess; token(): Promise<string> }> {
    const admin = new KeycloakAdmin();
    const realm = await createRealmCopy(admin, 'ff-browser');
    this.#realms.push(realm);
    const [client] = (await (
      await admin.request('GET', `/${realm.name}/clients?clientId=${API_CLIENT.clientId}`, 200)
    ).json()) as { id: string; attributes?: Record<string, string> }[];
    await admin.request('PUT', `/${realm.name}/clients/${client!.id}`, 204, {
      ...client,
      attributes: { ...client!.attributes, 'access.token.lifespan': String(lifespanSeconds) },
    });
    const app = await startApp('app-short-tokens', { ...this.env(), KEYCLOAK_REALM: realm.name });
    this.#all.push(app);
    return {
      app,
      token: async () => (await clientCredentialsGrant({ realm: realm.name })).access_token,
    };
  }

  /** A fresh access token of a realm user (password grant, as a page's OIDC client gets one). */
  async token(user: keyof typeof USERS): Promise<string> {
    return (await passwordGrant(USERS[user])).access_token;
  }

  /** A JSON request to the app through the proxy, as `user` (or with `headers`). */
  async call(
    method: string,
    path: string,
    options: { user?: keyof typeof USERS; headers?: Record<string, string>; body?: unknown } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.user !== undefined)
      headers.authorization = `Bearer ${await this.token(options.user)}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${this.proxy.url}${path}`, {
      method,
      headers,
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: kept as text
    }
    return { status: response.status, headers: response.headers, body };
  }

  /** Like `call`, but throws (with the answer) unless the status is `expected`. */
  async expect(
    expected: number,
    method: string,
    path: string,
    options: Parameters<Cluster['call']>[2] = {},
  ): Promise<Record<string, unknown>> {
    const answer = await this.call(method, path, options);
    if (answer.status !== expected) {
      throw new Error(
        `${method} ${path} answered ${answer.status}, not ${expected}: ${JSON.stringify(answer.body)}`,
      );
    }
    return answer.body as Record<string, unknown>;
  }

  /** A dashboard of `count` live widgets on `view`, made by alice (editor); their ids. */
  async liveWidgets(count: number, view = 'demo_orders'): Promise<string[]> {
    const dashboard = await this.expect(201, 'POST', '/api/v1/dashboards', {
      user: 'alice',
      body: { name: `live ${view} ${randomBytes(3).toString('hex')}` },
    });
    const ids: string[] = [];
    for (let index = 0; index < count; index += 1) {
      const widget = await this.expect(
        201,
        'POST',
        `/api/v1/dashboards/${String(dashboard.id)}/widgets`,
        {
          user: 'alice',
          body: { name: `${view} ${index}`, kind: 'live', config: { view } },
        },
      );
      ids.push(String(widget.id));
    }
    return ids;
  }

  /** An API key for `widgetIds`, made by carol (admin): `{ id, key }`. */
  async apiKey(
    widgetIds: readonly string[],
    expiresAt?: Date,
  ): Promise<{ id: string; key: string }> {
    const created = await this.expect(201, 'POST', '/api/v1/api-keys', {
      user: 'carol',
      body: {
        name: `browser ${randomBytes(3).toString('hex')}`,
        widget_ids: widgetIds,
        ...(expiresAt === undefined ? {} : { expires_at: expiresAt.toISOString() }),
      },
    });
    return { id: String(created.id), key: String(created.key) };
  }

  /** Stops everything this cluster started, each with a bounded wait; never throws. */
  async close(): Promise<void> {
    const quietly = async (what: Promise<unknown> | undefined): Promise<void> => {
      await what?.catch(() => undefined);
    };
    await quietly(this.browser?.close());
    await Promise.all(this.#all.map((app) => quietly(app.child.stop(5_000))));
    await quietly(this.double?.child.stop(2_000));
    await quietly(this.proxy?.close());
    await quietly(this.allowed?.close());
    await quietly(this.other?.close());
    await quietly(this.database?.drop());
    await Promise.all(this.#realms.map((realm) => quietly(realm.delete())));
  }
}
