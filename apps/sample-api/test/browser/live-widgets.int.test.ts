/* eslint-disable @typescript-eslint/no-unsafe-assignment -- expect.any() and
   expect.stringMatching() inside toMatchObject are typed any */
// Live widgets in a real browser (issue 22): Debian's Chromium, driven by playwright-core,
// runs the README's browser snippet (extracted from apps/sample-api/README.md when the page
// loads it) against the BUILT app: two `node dist/main.js` processes in production mode
// behind a round-robin proxy, the Materialize wire double as a separate process, real
// Keycloak tokens, real PostgreSQL and Redis. Every assertion is about what the page's
// EventSource saw and what the page made of it through the snippet's callbacks.
import net from 'node:net';
import { once } from 'node:events';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  describe as describeRecorded,
  openLivePage,
  type LivePage,
  type Recorded,
  type WidgetState,
} from './support/browser.js';
import { Cluster } from './support/cluster.js';
import { eventually } from './support/processes.js';

const cluster = new Cluster({
  instances: 2,
  streamsPerUser: 2,
  shutdownTimeoutMs: 15_000,
  tickMs: 500,
});
/** Ten live widgets of one dashboard on demo_orders; the first is every single-widget test's. */
let widgets: string[];
let widget: string;
/** A live widget on origin_probe: only the cross-origin test streams that view. */
let probe: string;
const pages: LivePage[] = [];

beforeAll(async () => {
  await cluster.start();
  widgets = await cluster.liveWidgets(10);
  widget = widgets[0]!;
  probe = (await cluster.liveWidgets(1, 'origin_probe'))[0]!;
}, 90_000);

afterEach(async () => {
  for (const page of pages.splice(0)) await page.close().catch(() => undefined);
  // Every stream of the test has ended at the app before the next test counts streams.
  await eventually('the streams of the last test to end', () =>
    cluster.proxy.openStreams().length === 0 ? true : undefined,
  ).catch(() => undefined);
});

afterAll(async () => {
  await cluster.close();
}, 60_000);

/** A fresh bearer token of alice (viewer, tenant A) for every ticket request. */
const bearer = async (): Promise<Record<string, string>> => ({
  authorization: `Bearer ${await cluster.token('alice')}`,
});

async function open(
  origin: string,
  credentials: () => Promise<Record<string, string>>,
): Promise<LivePage> {
  const logFrom = cluster.proxy.log.length;
  const page = await openLivePage(cluster.browser, `${origin}/page.html`, credentials, () =>
    [
      'the proxy since the page opened:',
      ...cluster.proxy.log
        .slice(logFrom)
        .slice(-30)
        .map(
          (entry) =>
            `  ${entry.method} ${entry.path.replace(/ticket=[^&]+/, 'ticket=…')} from ${entry.origin ?? '-'} -> ${entry.upstream ?? '-'} ${entry.status ?? 'no answer'}${entry.broken ? ' (broken)' : ''}${entry.open ? ' (open)' : ''}`,
        ),
    ].join('\n'),
  );
  pages.push(page);
  return page;
}

const samePage = (credentials = bearer): Promise<LivePage> =>
  open(`${cluster.proxy.url}/__test`, credentials);
const ticketUrl = (base = cluster.proxy.url, scope: 'api' | 'embed' = 'api'): string =>
  `${base}/${scope}/v1/live/tickets`;

/** The order ids the page shows for a widget (each row once, if the stream is exact). */
const orderIds = (state: WidgetState | undefined): number[] =>
  Object.keys(state?.rows ?? {})
    .map(Number)
    .sort((a, b) => a - b);

/**
 * Waits until the page shows `more` orders past the last one it showed when called (past
 * its snapshot's last, when it had none yet): live updates, not only the snapshot.
 */
async function moreOrders(
  page: LivePage,
  id: string,
  more = 3,
  timeoutMs = 15_000,
): Promise<Recorded> {
  const first = await page.until(
    `the snapshot of widget ${id}`,
    (recorded) => (orderIds(recorded.widgets[id]).length > 0 ? recorded : undefined),
    timeoutMs,
  );
  const base = orderIds(first.widgets[id]).at(-1)!;
  return page.until(
    `${more} orders of widget ${id} past order ${base}`,
    (recorded) =>
      (orderIds(recorded.widgets[id]).at(-1) ?? 0) >= base + more ? recorded : undefined,
    timeoutMs,
  );
}

/**
 * Exactly once: every order from 1 to the highest shown is held once (no lost one, no
 * duplicate), and the page never held a row twice or removed one.
 */
function expectExact(recorded: Recorded, id: string): void {
  const state = recorded.widgets[id];
  const ids = orderIds(state);
  const max = ids.at(-1) ?? 0;
  expect(ids, describeRecorded(recorded)).toEqual(
    Array.from({ length: max }, (_, index) => index + 1),
  );
  expect(
    Object.values(state!.rows).every((count) => count === 1),
    JSON.stringify(state!.rows),
  ).toBe(true);
}

const wireOf = (recorded: Recorded, type: string): Recorded['wire'] =>
  recorded.wire.filter((entry) => entry.type === type);

describe('live widgets in Chromium, through the README snippet', () => {
  it('same origin, bearer token: the page gets the snapshot and then every order, exactly once, on one connection', async () => {
    const page = await samePage();
    const logFrom = cluster.proxy.log.length;
    await page.start(ticketUrl(), [widget]);
    const recorded = await moreOrders(page, widget);
    expectExact(recorded, widget);
    expect(recorded.connections).toBe(1);
    expect(recorded.errors).toEqual([]);
    // The table's value types: int8 and mz_timestamp as JSON strings, mz_diff a number.
    const update = wireOf(recorded, 'update')[0]!.data as Record<string, unknown>;
    expect(update).toMatchObject({ widget_id: widget, mz_diff: 1 });
    expect(update.mz_timestamp).toMatch(/^\d+$/);
    expect(typeof (update.row as Record<string, unknown>).order_id).toBe('string');
    expect(typeof (update.row as Record<string, unknown>).amount).toBe('number');
    // What went over the wire: a same-origin ticket request (201), then the stream (200).
    const log = cluster.proxy.log.slice(logFrom);
    expect(log.find((entry) => entry.method === 'POST')).toMatchObject({
      path: '/api/v1/live/tickets',
      origin: cluster.proxy.url,
      status: 201,
    });
    expect(log.find((entry) => entry.path.startsWith('/live/v1/stream'))).toMatchObject({
      status: 200,
      contentType: expect.stringMatching(/^text\/event-stream/),
    });
  }, 30_000);

  it('a page of an allowed origin, with an API key: the embed ticket and the stream work cross-origin', async () => {
    const key = await cluster.apiKey([widget]);
    const page = await open(cluster.allowed.url, () => Promise.resolve({ 'X-API-Key': key.key }));
    await page.start(ticketUrl(cluster.proxy.url, 'embed'), [widget]);
    const recorded = await moreOrders(page, widget);
    expectExact(recorded, widget);
    expect(recorded.errors).toEqual([]);
    const fromPage = cluster.proxy.log.filter((entry) => entry.origin === cluster.allowed.url);
    expect(fromPage.find((entry) => entry.method === 'POST')).toMatchObject({
      path: '/embed/v1/live/tickets',
      status: 201,
    });
    expect(fromPage.find((entry) => entry.path.startsWith('/live/v1/stream'))).toMatchObject({
      status: 200,
    });
  }, 30_000);

  it('a page of an origin that is not allowed gets nothing, and no SUBSCRIBE starts for it; an allowed one then does', async () => {
    const probeSubscribes = (): string[] =>
      cluster.double.subscribes().filter((statement) => /origin_probe/.test(statement));
    expect(probeSubscribes()).toEqual([]);
    const key = await cluster.apiKey([probe]);
    const page = await open(cluster.other.url, () => Promise.resolve({ 'X-API-Key': key.key }));
    const fromOther = (): typeof cluster.proxy.log =>
      cluster.proxy.log.filter((entry) => entry.origin === cluster.other.url);

    // 1. The snippet on that page: its ticket request is refused (the preflight or the POST).
    await page.start(ticketUrl(cluster.proxy.url, 'embed'), [probe]);
    await eventually(
      'two refused ticket attempts from the other origin',
      () => (fromOther().filter((entry) => entry.status === 403).length >= 2 ? true : undefined),
      15_000,
    );
    expect(
      fromOther().every((entry) => entry.status === 403 && entry.path === '/embed/v1/live/tickets'),
    ).toBe(true);

    // 2. A valid ticket (issued to a server, no Origin) opened by an EventSource on that page:
    //    refused 403 before the ticket is redeemed or anything subscribes.
    const ticket = await cluster.expect(201, 'POST', '/embed/v1/live/tickets', {
      headers: { 'x-api-key': key.key },
      body: { widget_ids: [probe] },
    });
    await page.page.evaluate(
      `new EventSource(${JSON.stringify(`${cluster.proxy.url}${String(ticket.url)}`)})`,
    );
    const streamAttempt = await eventually('the stream request from the other origin', () =>
      fromOther().find(
        (entry) => entry.path.startsWith('/live/v1/stream') && entry.status !== null,
      ),
    );
    expect(streamAttempt.status).toBe(403);
    const recorded = await page.until('the EventSource to fail', (r) =>
      wireOf(r, 'error').length > 0 ? r : undefined,
    );
    expect(wireOf(recorded, 'update')).toEqual([]);
    expect(recorded.widgets).toEqual({});
    expect(probeSubscribes()).toEqual([]);
    // The refused request did not spend the ticket: it still opens a stream once.
    const stream = await fetch(`${cluster.proxy.url}${String(ticket.url)}`, {
      signal: AbortSignal.timeout(10_000),
    });
    expect(stream.status).toBe(200);
    await stream.body?.cancel();

    // 3. The control: the allowed origin's page streams the same widget, and that SUBSCRIBE shows.
    const allowed = await open(cluster.allowed.url, () =>
      Promise.resolve({ 'X-API-Key': key.key }),
    );
    await allowed.start(ticketUrl(cluster.proxy.url, 'embed'), [probe]);
    expectExact(await moreOrders(allowed, probe), probe);
    expect(probeSubscribes().length).toBeGreaterThan(0);
  }, 45_000);

  it('ten live widgets in one tab over HTTP/1.1: one connection, and every widget gets its orders', async () => {
    const page = await samePage();
    await page.start(ticketUrl(), widgets);
    const snapshot = await page.until('the snapshot of every widget', (r) =>
      widgets.every((id) => orderIds(r.widgets[id]).length > 0) ? r : undefined,
    );
    const base = Math.max(...widgets.map((id) => orderIds(snapshot.widgets[id]).at(-1)!));
    const recorded = await page.until(
      'every widget to show 3 orders past its snapshot',
      (r) =>
        widgets.every((id) => (orderIds(r.widgets[id]).at(-1) ?? 0) >= base + 3) ? r : undefined,
      20_000,
    );
    for (const id of widgets) expectExact(recorded, id);
    expect(recorded.connections).toBe(1);
    expect(wireOf(recorded, 'refused')).toEqual([]);
  }, 30_000);

  it('SIGKILL of the instance holding the stream: the page reconnects to the other and resumes exactly', async () => {
    const page = await samePage();
    await page.start(ticketUrl(), [widget]);
    await moreOrders(page, widget);
    const [stream] = cluster.proxy.openStreams();
    const slot = cluster.slotOf(stream!.upstream);
    const victim = cluster.instances[slot]!;
    try {
      victim.child.kill('SIGKILL');
      await victim.child.exited;
      const atKill = orderIds((await page.recorded()).widgets[widget]).at(-1)!;
      const recorded = await page.until(
        'orders past the kill on a new connection',
        (r) =>
          r.connections >= 2 && (orderIds(r.widgets[widget]).at(-1) ?? 0) >= atKill + 4
            ? r
            : undefined,
        20_000,
      );
      expectExact(recorded, widget);
      expect(recorded.widgets[widget]!.resets).toBe(0); // resumed from its position, not a new snapshot
      expect(cluster.proxy.openStreams().map((entry) => entry.upstream)).toEqual([
        `app-${1 - slot}`,
      ]);
    } finally {
      await cluster.startInstance(slot);
    }
  }, 60_000);

  it('SIGTERM of one of two instances: the page sees shutdown, continues exactly on the other, and the process exits 0 at once', async () => {
    const page = await samePage();
    await page.start(ticketUrl(), [widget]);
    await moreOrders(page, widget);
    const [stream] = cluster.proxy.openStreams();
    const slot = cluster.slotOf(stream!.upstream);
    const stopping = cluster.instances[slot]!;
    // A connection that never sends a request (a browser's pre-opened one) must not hold it.
    const idle = net.connect(stopping.port, '127.0.0.1');
    await once(idle, 'connect');
    idle.on('error', () => undefined);
    try {
      const signalled = Date.now();
      stopping.child.kill('SIGTERM');
      const code = await stopping.child.exited;
      const tookMs = Date.now() - signalled;
      expect(code, stopping.child.tail()).toBe(0);
      // Well inside SHUTDOWN_TIMEOUT_MS (15 s): neither the stream nor an idle socket held it.
      expect(tookMs).toBeLessThan(10_000);
      const recorded = await page.until(
        'orders on a new connection to the other instance',
        (r) => {
          const last = r.connections;
          return last >= 2 &&
            r.wire.some((entry) => entry.conn === last && entry.type === 'update') &&
            cluster.proxy.openStreams().some((entry) => entry.upstream === `app-${1 - slot}`)
            ? r
            : undefined;
        },
        20_000,
      );
      const shutdown = wireOf(recorded, 'shutdown');
      expect(
        shutdown.map((entry) => entry.conn),
        describeRecorded(recorded),
      ).toEqual([1]);
      await moreOrders(page, widget, 3);
      const after = await page.recorded();
      expectExact(after, widget);
      expect(after.widgets[widget]!.resets).toBe(0);
    } finally {
      idle.destroy();
      await cluster.startInstance(slot);
    }
  }, 60_000);

  it('over the per-user stream limit the page sees refused, and recovers by itself once a stream ends', async () => {
    // Straight to one instance (the limit is per process), from the allowed origin.
    const base = cluster.instances[0]!.url;
    const tabs: LivePage[] = [];
    for (let index = 0; index < 2; index += 1) {
      const tab = await open(cluster.allowed.url, bearer);
      await tab.start(ticketUrl(base), [widget]);
      await moreOrders(tab, widget);
      tabs.push(tab);
    }
    const third = await open(cluster.allowed.url, bearer);
    await third.start(ticketUrl(base), [widget]);
    const refused = await third.until('a refused event', (r) => wireOf(r, 'refused')[0]);
    expect(refused.data).toMatchObject({ status: 429, retry_after_ms: expect.any(Number) });
    const statuses = (await third.recorded()).statuses;
    expect(statuses.some((status) => status.state === 'refused')).toBe(true);
    // One tab goes away: the third tab's own retry gets the slot.
    await tabs[0]!.close();
    const recorded = await moreOrders(third, widget, 3, 25_000);
    expectExact(recorded, widget);
  }, 60_000);

  it('Materialize lost (the double killed, then restarted on its port): the page sees status lost, then live, and orders again', async () => {
    const page = await samePage();
    await page.start(ticketUrl(), [widget]);
    await moreOrders(page, widget);
    cluster.double.child.kill('SIGKILL');
    await cluster.double.child.exited;
    const lost = await page.until('status lost', (r) =>
      r.widgets[widget]!.upstream.includes('lost') ? r : undefined,
    );
    const before = orderIds(lost.widgets[widget]).at(-1)!;
    await cluster.restartDouble();
    const recorded = await page.until(
      'status live and new orders',
      (r) => {
        const state = r.widgets[widget]!;
        return state.upstream.at(-1) === 'live' && (orderIds(state).at(-1) ?? 0) >= before + 3
          ? r
          : undefined;
      },
      30_000,
    );
    expect(recorded.widgets[widget]!.upstream).toEqual(['lost', 'live']);
    expectExact(recorded, widget);
  }, 60_000);

  it('a bearer token that expires ends the stream with credential-expired; the page reconnects with a fresh token and resumes exactly', async () => {
    // Tokens of 8 s from a copy of the realm, for an instance that trusts that copy.
    const short = await cluster.shortTokens(8);
    const page = await open(cluster.allowed.url, async () => ({
      authorization: `Bearer ${await short.token()}`,
    }));
    await page.start(ticketUrl(short.app.url), [widget]);
    await moreOrders(page, widget);
    const expired = await page.until(
      'credential-expired, then orders on the next connection',
      (r) => {
        const event = wireOf(r, 'credential-expired')[0];
        return event !== undefined &&
          r.wire.some((entry) => entry.conn > event.conn && entry.type === 'update')
          ? r
          : undefined;
      },
      25_000,
    );
    expect(wireOf(expired, 'credential-expired')[0]!.conn).toBe(1);
    await moreOrders(page, widget, 2);
    const recorded = await page.recorded();
    expectExact(recorded, widget);
    expect(recorded.widgets[widget]!.resets).toBe(0);
    await short.app.child.stop(5_000);
  }, 60_000);

  it('an API key that expires ends the stream with credential-expired; the page reconnects with a fresh key; revoked stops it', async () => {
    const fresh = await cluster.apiKey([widget]);
    // Made last, so that its 8 s are not spent making the other.
    const expiresAt = Date.now() + 8_000;
    const expiring = await cluster.apiKey([widget], new Date(expiresAt));
    // The page's credential source: the expiring key while it lasts, then the fresh one.
    const page = await open(cluster.allowed.url, () =>
      Promise.resolve({ 'X-API-Key': Date.now() < expiresAt - 1_000 ? expiring.key : fresh.key }),
    );
    await page.start(ticketUrl(cluster.proxy.url, 'embed'), [widget]);
    await moreOrders(page, widget);
    const expired = await page.until(
      'credential-expired, then orders on the next connection',
      (r) => {
        const event = wireOf(r, 'credential-expired')[0];
        return event !== undefined &&
          r.wire.some((entry) => entry.conn > event.conn && entry.type === 'update')
          ? r
          : undefined;
      },
      25_000,
    );
    expect(wireOf(expired, 'credential-expired').map((entry) => entry.conn)).toEqual([1]);
    await moreOrders(page, widget, 2);
    expectExact(await page.recorded(), widget);

    // Revoked: the stream ends with `revoked`, and the page stops (no new ticket request).
    await cluster.expect(204, 'DELETE', `/api/v1/api-keys/${fresh.id}`, { user: 'carol' });
    const revoked = await page.until(
      'revoked',
      (r) => (r.statuses.some((status) => status.state === 'revoked') ? r : undefined),
      40_000,
    );
    expect(wireOf(revoked, 'revoked')).toHaveLength(1);
    const connections = revoked.connections;
    const posts = cluster.proxy.log.filter((entry) => entry.method === 'POST').length;
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect((await page.recorded()).connections).toBe(connections);
    expect(cluster.proxy.log.filter((entry) => entry.method === 'POST')).toHaveLength(posts);
  }, 90_000);
});
