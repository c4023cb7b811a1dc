// One SSE viewer of bench/live on a raw TCP socket (10,000 of them must be cheap: no
// EventSource, no fetch): it sends the GET, reads the response head, de-chunks the body and
// parses Server-Sent Events incrementally, and keeps the widget's rows as a browser would:
// updates are applied when the progress event after them arrives, the last progress id is
// sent back as Last-Event-ID on a reconnect, `reset` drops the state.
import net from 'node:net';
import { rowKey } from './common.ts';

/** Commit-to-client delays, 1 ms buckets (Date.now() on both sides); the last bucket holds the rest. */
export class DelayHistogram {
  readonly counts: Uint32Array = new Uint32Array(60_001);
  total = 0;

  record(ms: number): void {
    const bucket = Math.min(this.counts.length - 1, Math.max(0, Math.round(ms)));
    this.counts[bucket] = (this.counts[bucket] ?? 0) + 1;
    this.total += 1;
  }

  /** The non-empty buckets as [ms, count] pairs (what travels over IPC). */
  entries(): [number, number][] {
    const entries: [number, number][] = [];
    this.counts.forEach((count, ms) => {
      if (count > 0) entries.push([ms, count]);
    });
    return entries;
  }
}

/** What every viewer of a process counts, by kind. */
export interface ViewerCounters {
  /** Responses other than 200, by status. */
  refused: Record<string, number>;
  /** Socket errors, by code (EMFILE: out of file descriptors; ECONNRESET, …). */
  socketErrors: Record<string, number>;
  /** Streams that ended other than by our own disconnect: `stream-error`, `end`, `shutdown`, `closed` (no event). */
  streamEnds: Record<string, number>;
  /** `reset` events received. */
  resets: number;
  /** Connections opened after the first (our disconnects and the server's). */
  reconnects: number;
  /** Initial connections that got no first progress event in time. */
  timeouts: number;
}

/** Counters at zero. */
export function noCounters(): ViewerCounters {
  return { refused: {}, socketErrors: {}, streamEnds: {}, resets: 0, reconnects: 0, timeouts: 0 };
}

/** What the viewers of one process share. */
export interface ViewerContext {
  port: number;
  readonly counters: ViewerCounters;
  readonly delays: DelayHistogram;
  /** Delays are recorded only inside the steady window. */
  recording: boolean;
  /** After the initial connection: a stream that ends is reopened (else the viewer gives up). */
  keepConnected: boolean;
  /** How long an initial connection may take to its first progress event. */
  readonly connectTimeoutMs: number;
}

/** How a viewer's initial connection went. */
export type ConnectOutcome = 'ready' | 'refused' | 'error' | 'closed' | 'timeout';

/** Where the reader is in the response. */
const PHASE = {
  head: 0,
  chunkSize: 1,
  chunkData: 2,
  chunkEnd: 3,
  identity: 4,
  done: 5,
} as const;
type Phase = (typeof PHASE)[keyof typeof PHASE];

/** One SSE viewer of widget `widget`. */
export class Viewer {
  readonly id: number;
  readonly widget: number;
  /** Applied rows (row key → count); a count back at 0 is deleted. */
  readonly state: Map<string, number> = new Map();
  /** The id of the last progress event: what Last-Event-ID sends on a reconnect. */
  lastProgress: string | undefined;
  /** It had a stream once (its initial connection got a progress event). */
  everConnected = false;
  readonly #context: ViewerContext;
  #socket: net.Socket | undefined;
  /** Updates received since the last progress event: [row key, diff]. */
  #pending: [string, number][] = [];
  #phase: Phase = PHASE.head;
  #raw = '';
  #chunkLeft = 0;
  #text = '';
  /** Date.now() at this connection's first progress event; undefined before it. */
  #liveSince: number | undefined;
  /** The stream ended with an event (so its close is not counted again as `closed`). */
  #ended = false;
  /** We closed it ourselves (a bounce or the end of the run). */
  #leaving = false;
  #settleInitial: ((outcome: ConnectOutcome) => void) | undefined;
  #retry: NodeJS.Timeout | undefined;

  constructor(id: number, widget: number, context: ViewerContext) {
    this.id = id;
    this.widget = widget;
    this.#context = context;
  }

  /** The initial connection: resolves at its first progress event, or how it failed. */
  connect(): Promise<ConnectOutcome> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#context.counters.timeouts += 1;
        finish('timeout');
        this.#leaving = true;
        this.#socket?.destroy();
      }, this.#context.connectTimeoutMs);
      const finish = (outcome: ConnectOutcome): void => {
        clearTimeout(timer);
        this.#settleInitial = undefined;
        resolve(outcome);
      };
      this.#settleInitial = finish;
      this.#open();
    });
  }

  /** Connected and past its first progress event. */
  get live(): boolean {
    return this.#liveSince !== undefined;
  }

  /** Closes the stream now and reconnects after `pauseMs` with Last-Event-ID. */
  bounce(pauseMs: number): void {
    if (this.#socket === undefined) return;
    this.#leaving = true;
    this.#socket.destroy();
    this.#retry = setTimeout(() => this.#open(), pauseMs);
  }

  /** Closes the stream for good. */
  close(): void {
    this.#leaving = true;
    clearTimeout(this.#retry);
    this.#socket?.destroy();
  }

  #open(): void {
    if (this.everConnected) this.#context.counters.reconnects += 1;
    this.#leaving = false;
    this.#ended = false;
    this.#phase = PHASE.head;
    this.#raw = '';
    this.#text = '';
    this.#chunkLeft = 0;
    this.#pending = [];
    this.#liveSince = undefined;
    const resume = this.lastProgress === undefined ? '' : `Last-Event-ID: ${this.lastProgress}\r\n`;
    const socket = net.connect({ host: '127.0.0.1', port: this.#context.port });
    this.#socket = socket;
    socket.setEncoding('latin1'); // one char per byte: chunk sizes count bytes (the events are ASCII)
    socket.setNoDelay(true);
    socket.on('connect', () => {
      socket.write(
        `GET /w/${this.widget}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `Accept: text/event-stream\r\nx-viewer: v${this.id}\r\n${resume}\r\n`,
      );
    });
    socket.on('data', (chunk: string) => this.#read(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? error.name;
      this.#context.counters.socketErrors[code] =
        (this.#context.counters.socketErrors[code] ?? 0) + 1;
      this.#settleInitial?.('error');
    });
    socket.on('close', () => this.#closed(socket));
  }

  #closed(socket: net.Socket): void {
    if (socket !== this.#socket) return;
    this.#socket = undefined;
    this.#pending = []; // updates after the last progress come again after a resume
    this.#liveSince = undefined;
    if (this.#leaving) return;
    if (!this.#ended) increment(this.#context.counters.streamEnds, 'closed');
    this.#settleInitial?.('closed');
    this.#reopenLater(500 + Math.random() * 1000);
  }

  #reopenLater(ms: number): void {
    if (!this.#context.keepConnected || !this.everConnected) return;
    this.#retry = setTimeout(() => this.#open(), ms);
  }

  #read(chunk: string): void {
    this.#raw += chunk;
    for (;;) {
      switch (this.#phase) {
        case PHASE.head: {
          const end = this.#raw.indexOf('\r\n\r\n');
          if (end === -1) return;
          const head = this.#raw.slice(0, end);
          this.#raw = this.#raw.slice(end + 4);
          const status = head.slice(9, 12);
          if (status !== '200') {
            increment(this.#context.counters.refused, status);
            this.#phase = PHASE.done;
            this.#settleInitial?.('refused');
            this.#leaving = true;
            this.#socket?.destroy();
            this.#reopenLater(1000);
            return;
          }
          this.#phase = /\r\ntransfer-encoding:\s*chunked/i.test(head)
            ? PHASE.chunkSize
            : PHASE.identity;
          break;
        }
        case PHASE.chunkSize: {
          const end = this.#raw.indexOf('\r\n');
          if (end === -1) return;
          this.#chunkLeft = Number.parseInt(this.#raw.slice(0, end), 16);
          this.#raw = this.#raw.slice(end + 2);
          this.#phase = this.#chunkLeft === 0 ? PHASE.done : PHASE.chunkData;
          break;
        }
        case PHASE.chunkData: {
          if (this.#raw.length === 0) return;
          const take = Math.min(this.#chunkLeft, this.#raw.length);
          this.#events(this.#raw.slice(0, take));
          this.#raw = this.#raw.slice(take);
          this.#chunkLeft -= take;
          if (this.#chunkLeft > 0) return;
          this.#phase = PHASE.chunkEnd;
          break;
        }
        case PHASE.chunkEnd:
          if (this.#raw.length < 2) return;
          this.#raw = this.#raw.slice(2);
          this.#phase = PHASE.chunkSize;
          break;
        case PHASE.identity:
          this.#events(this.#raw);
          this.#raw = '';
          return;
        case PHASE.done:
          this.#raw = '';
          return;
      }
    }
  }

  /** Feeds body text; dispatches every complete event (the server ends each with a blank line). */
  #events(text: string): void {
    const all = this.#text + text;
    let start = 0;
    for (;;) {
      const end = all.indexOf('\n\n', start);
      if (end === -1) break;
      this.#event(all, start, end);
      start = end + 2;
    }
    this.#text = start === 0 ? all : all.slice(start);
  }

  #event(all: string, start: number, end: number): void {
    let event = 'message';
    let id: string | undefined;
    let data: string | undefined;
    for (let line = start; line < end;) {
      let next = all.indexOf('\n', line);
      if (next === -1 || next > end) next = end;
      if (all.startsWith('event: ', line)) event = all.slice(line + 7, next);
      else if (all.startsWith('id: ', line)) id = all.slice(line + 4, next);
      else if (all.startsWith('data: ', line)) data = all.slice(line + 6, next);
      line = next + 1;
    }
    if (data === undefined) return; // retry: and keep-alive comments
    switch (event) {
      case 'update':
        this.#update(data);
        break;
      case 'progress':
        this.#progress(id);
        break;
      case 'reset':
        this.#context.counters.resets += 1;
        this.state.clear();
        this.#pending = [];
        break;
      default: // stream-error, end, shutdown: the server closes the stream next
        increment(this.#context.counters.streamEnds, event);
        this.#ended = true;
    }
  }

  #update(data: string): void {
    const { mz_diff: diff, row } = JSON.parse(data) as {
      mz_diff: number;
      row: Record<string, unknown>;
    };
    this.#pending.push([rowKey(row), diff]);
    const committed = Number(row.committed_at_ms);
    if (
      this.#context.recording &&
      diff > 0 &&
      this.#liveSince !== undefined &&
      committed >= this.#liveSince
    ) {
      this.#context.delays.record(Date.now() - committed);
    }
  }

  #progress(id: string | undefined): void {
    for (const [key, diff] of this.#pending) {
      const count = (this.state.get(key) ?? 0) + diff;
      if (count === 0) this.state.delete(key);
      else this.state.set(key, count);
    }
    this.#pending = [];
    if (id !== undefined) this.lastProgress = id;
    if (this.#liveSince === undefined) {
      this.#liveSince = Date.now();
      this.everConnected = true;
      this.#settleInitial?.('ready');
    }
  }
}

function increment(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}
