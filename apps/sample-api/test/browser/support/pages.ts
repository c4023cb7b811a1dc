/**
 * What the browser loads: one test page, the README's snippet (extracted from
 * apps/sample-api/README.md at every request, never a copy), and a recorder that
 * keeps everything the page's EventSources saw and the widget state the page builds
 * from the snippet's callbacks, as the README's event table says a page does.
 * Plain support code: no vitest imports.
 */
import { readFile } from 'node:fs/promises';
import type { TestFile } from './proxy.js';

const README = new URL('../../../README.md', import.meta.url);

/** The ```js block between the README's browser-snippet markers, as a page would copy it. */
export async function readSnippet(): Promise<string> {
  const readme = await readFile(README, 'utf8');
  const section = /<!-- browser-snippet:start -->([\s\S]*?)<!-- browser-snippet:end -->/.exec(
    readme,
  );
  if (section === null) throw new Error('README.md has no browser-snippet markers');
  const block = /```js\n([\s\S]*?)\n```/.exec(section[1]!);
  if (block === null) throw new Error('the browser-snippet section has no ```js block');
  const code = block[1]!;
  if (!/\bfunction openLiveWidgets\b/.test(code)) {
    throw new Error('the browser snippet does not define openLiveWidgets');
  }
  return code;
}

/**
 * The recorder, loaded before the snippet:
 * - `EventSource` is replaced by a subclass that records, per connection (1, 2, …),
 *   its URL, `open`, `error` and every event of the stream's table with its data, in
 *   `__rec.wire`: what the page's EventSource saw, whatever the snippet does with it;
 * - `__startLive(options)` calls the snippet's `openLiveWidgets` with `credentials`
 *   from the test (`__credentials`, exposed by playwright) and callbacks that record
 *   (`__rec.events`, `__rec.statuses`) and keep each widget's rows as the README says:
 *   updates are held until the widget's next `progress`, then applied; `reset` drops the
 *   rows. Held updates are dropped when a new connection opens (it resumes from the
 *   last progress, so they come again).
 */
const RECORDER = String.raw`
(() => {
  const rec = (window.__rec = {
    wire: [], events: [], statuses: [], connections: 0, widgets: {}, handles: [], errors: [],
  });
  window.addEventListener('error', (event) => rec.errors.push(String(event.message)));
  window.addEventListener('unhandledrejection', (event) => rec.errors.push(String(event.reason)));
  const TYPES = ['update', 'progress', 'reset', 'status', 'credential-expired', 'revoked',
    'refused', 'shutdown', 'stream-error', 'end'];
  const Native = window.EventSource;
  window.EventSource = class RecordingEventSource extends Native {
    constructor(url, init) {
      super(url, init);
      const conn = ++rec.connections;
      const note = (entry) => rec.wire.push({ conn, at: Date.now(), ...entry });
      note({ type: 'connect', url: String(url) });
      this.addEventListener('open', () => note({ type: 'open' }));
      this.addEventListener('error', () => note({ type: 'error', readyState: this.readyState }));
      for (const type of TYPES) {
        this.addEventListener(type, (event) => {
          let data;
          try { data = JSON.parse(event.data); } catch { data = event.data; }
          note({ type, data });
        });
      }
    }
  };
  const widget = (id) =>
    (rec.widgets[id] ??= { rows: {}, held: [], applied: [], frontier: null, resets: 0, upstream: [], updates: 0 });
  window.__startLive = (options) => {
    const index = rec.handles.length;
    rec.handles.push(openLiveWidgets({
      ...options,
      credentials: () => window.__credentials(),
      onEvent(type, data) {
        rec.events.push({ handle: index, type, data, at: Date.now() });
        const w = widget(data.widget_id);
        if (type === 'update') {
          w.updates += 1;
          w.held.push(data);
        } else if (type === 'progress') {
          for (const update of w.held) {
            const key = String(update.row.order_id);
            w.rows[key] = (w.rows[key] ?? 0) + update.mz_diff;
            w.applied.push({ order_id: key, diff: update.mz_diff });
          }
          w.held = [];
          w.frontier = data.mz_timestamp;
        } else if (type === 'reset') {
          w.rows = {};
          w.held = [];
          w.resets += 1;
        } else if (type === 'status') {
          w.upstream.push(data.upstream);
        }
      },
      onStatus(status) {
        rec.statuses.push({ handle: index, at: Date.now(), ...status });
        if (status.state === 'open') for (const w of Object.values(rec.widgets)) w.held = [];
      },
    }));
    return index;
  };
  window.__closeLive = (index) => rec.handles[index].close();
})();
`;

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>live widgets</title>
<script src="recorder.js"></script>
<script src="snippet.js"></script>
</head><body><p>live widgets test page</p></body></html>
`;

/** The files every test server serves: `/page.html`, `/recorder.js`, `/snippet.js`. */
export function testFiles(): ReadonlyMap<string, TestFile> {
  return new Map<string, TestFile>([
    ['/page.html', { contentType: 'text/html; charset=utf-8', body: () => PAGE }],
    ['/recorder.js', { contentType: 'text/javascript; charset=utf-8', body: () => RECORDER }],
    ['/snippet.js', { contentType: 'text/javascript; charset=utf-8', body: readSnippet }],
  ]);
}
