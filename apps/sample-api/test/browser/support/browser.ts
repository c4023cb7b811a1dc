/**
 * Debian's Chromium (`scripts/services` installs it) driven by playwright-core, which
 * never downloads a browser: a persistent context on a fresh, empty profile folder,
 * with the flags this machine's closed network needs (without the background-
 * networking ones Chromium keeps trying Google's hosts). And the test page's handle:
 * start the README snippet in it and read back what the page saw.
 * Plain support code: no vitest imports.
 */
import { access, constants, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Where Debian's `chromium` package puts the browser. */
export const CHROMIUM = '/usr/bin/chromium';

const FLAGS = [
  '--no-sandbox', // root in CI
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/** Launches headless Chromium on an empty profile; `close()` removes the profile too. */
export async function launchBrowser(): Promise<Browser> {
  await access(CHROMIUM, constants.X_OK).catch((error: unknown) => {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: run scripts/services start (it installs Debian's chromium package)`,
      { cause: error },
    );
  });
  const profile = await mkdtemp(join(tmpdir(), 'ff-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      timeout: 30_000,
    });
    return {
      context,
      async close() {
        await Promise.race([
          context.close(),
          new Promise((resolve) => setTimeout(resolve, 10_000)),
        ]);
        await rm(profile, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(profile, { recursive: true, force: true });
    throw error;
  }
}

/** One widget's state as the page keeps it (pages.ts). */
export interface WidgetState {
  /** order_id → count of that row the page holds (1 for a row shown once). */
  readonly rows: Record<string, number>;
  /** Every update the page applied, in order. */
  readonly applied: readonly { order_id: string; diff: number }[];
  readonly frontier: string | null;
  readonly resets: number;
  /** `status` events' `upstream`, in order. */
  readonly upstream: readonly string[];
  /** `update` events the snippet passed on. */
  readonly updates: number;
}

/** What the page's EventSources saw, per connection. */
export interface WireEntry {
  readonly conn: number;
  readonly at: number;
  readonly type: string;
  readonly url?: string;
  readonly data?: unknown;
  readonly readyState?: number;
}

/** The snippet's onStatus calls. */
export interface StatusEntry {
  readonly handle: number;
  readonly at: number;
  readonly state: string;
  readonly [key: string]: unknown;
}

export interface Recorded {
  readonly wire: readonly WireEntry[];
  readonly statuses: readonly StatusEntry[];
  readonly connections: number;
  readonly widgets: Record<string, WidgetState>;
  readonly errors: readonly string[];
}

/** A test page with the snippet loaded. */
export interface LivePage {
  readonly page: Page;
  /** `openLiveWidgets({ ticketUrl, widgetIds, credentials: __credentials, … })`; its handle's index. */
  start(ticketUrl: string, widgetIds: readonly string[]): Promise<number>;
  /** `handle.close()` of a `start`. */
  stop(index: number): Promise<void>;
  recorded(): Promise<Recorded>;
  /** Waits (bounded) until `check` of the recorded state returns something other than undefined. */
  until<T>(
    what: string,
    check: (recorded: Recorded) => T | undefined,
    timeoutMs?: number,
  ): Promise<T>;
  close(): Promise<void>;
}

/**
 * Opens `pageUrl` (a page of testFiles()) in a new tab; `credentials` answers the
 * snippet's `credentials()` (the headers of each ticket request), run in the test process.
 */
export async function openLivePage(
  browser: Browser,
  pageUrl: string,
  credentials: () => Promise<Record<string, string>>,
  /** More to say when a wait times out (what the servers saw). */
  context: () => string = () => '',
): Promise<LivePage> {
  const page = await browser.context.newPage();
  await page.exposeFunction('__credentials', credentials);
  await page.goto(pageUrl, { timeout: 10_000 });
  const recorded = (): Promise<Recorded> => page.evaluate<Recorded>('window.__rec');
  return {
    page,
    start: (ticketUrl, widgetIds) =>
      page.evaluate<number>(`window.__startLive(${JSON.stringify({ ticketUrl, widgetIds })})`),
    stop: async (index) => {
      await page.evaluate(`window.__closeLive(${index})`);
    },
    recorded,
    async until(what, check, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      let last: Recorded | undefined;
      for (;;) {
        last = await recorded();
        const result = check(last);
        if (result !== undefined) return result;
        if (Date.now() >= deadline) {
          throw new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; the page saw:\n${describe(last)}\n${context()}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    close: () => page.close(),
  };
}

/** A short account of what a page saw, for failure messages. */
export function describe(recorded: Recorded): string {
  const wire = recorded.wire
    .filter((entry) => entry.type !== 'update' && entry.type !== 'progress')
    .map(
      (entry) =>
        `  #${entry.conn} ${entry.type}${entry.data === undefined ? '' : ` ${JSON.stringify(entry.data)}`}${entry.url ? ` ${entry.url.replace(/ticket=[^&]+/, 'ticket=…')}` : ''}`,
    );
  const counts = recorded.wire.reduce<Record<string, number>>((acc, entry) => {
    acc[`#${entry.conn} ${entry.type}`] = (acc[`#${entry.conn} ${entry.type}`] ?? 0) + 1;
    return acc;
  }, {});
  return [
    `connections: ${recorded.connections}`,
    `events (no update/progress):`,
    ...wire.slice(-40),
    `counts: ${JSON.stringify(counts)}`,
    `statuses: ${JSON.stringify(recorded.statuses)}`,
    `widgets: ${JSON.stringify(
      Object.fromEntries(
        Object.entries(recorded.widgets).map(([id, w]) => [
          id,
          {
            rows: Object.keys(w.rows).length,
            updates: w.updates,
            resets: w.resets,
            upstream: w.upstream,
            frontier: w.frontier,
          },
        ]),
      ),
    )}`,
    `page errors: ${JSON.stringify(recorded.errors)}`,
  ].join('\n');
}
