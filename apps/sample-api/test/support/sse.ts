/** One Server-Sent Event as a browser's EventSource would dispatch it. */
export interface SseEvent {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: string;
}

/** An open SSE response, read event by event over a real socket. */
export interface SseStream {
  readonly status: number;
  readonly headers: Headers;
  /** The body when the answer was not a stream (a problem+json). */
  readonly problem: unknown;
  /** The next event (comments are skipped); rejects after `timeoutMs` or when the stream ends. */
  next(timeoutMs?: number): Promise<SseEvent>;
  /** Events until one matches `until` (inclusive). */
  collect(until: (event: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent[]>;
  /** Comment lines seen so far (heartbeats). */
  readonly comments: number;
  /** The last `id` the stream set (what a browser sends back as Last-Event-ID). */
  readonly lastEventId: string | undefined;
  /** Resolves when the server ends the stream. */
  readonly ended: Promise<void>;
  /** Disconnects, as a closed browser tab does. */
  close(): void;
}

/** Opens `base + path` as an event stream, parsing it as the WHATWG spec does. */
export async function openSse(
  base: string,
  path: string,
  headers: Readonly<Record<string, string>> = {},
): Promise<SseStream> {
  const controller = new AbortController();
  const response = await fetch(`${base}${path}`, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  });
  const isStream = response.headers.get('content-type')?.startsWith('text/event-stream') ?? false;
  const problem: unknown = isStream ? null : await response.json();
  const queue: SseEvent[] = [];
  const waiters: (() => void)[] = [];
  let comments = 0;
  let lastEventId: string | undefined;
  let finished = false;
  const wake = (): void => {
    for (const waiter of waiters.splice(0)) waiter();
  };

  const ended = (async () => {
    if (!isStream || !response.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    let fields: { event?: string; id?: string; data: string[] } = { data: [] };
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, '');
          buffer = buffer.slice(newline + 1);
          if (line === '') {
            if (fields.data.length > 0 || fields.event !== undefined) {
              if (fields.id !== undefined) lastEventId = fields.id;
              queue.push({
                event: fields.event ?? 'message',
                id: fields.id,
                data: fields.data.join('\n'),
              });
              wake();
            } else if (fields.id !== undefined) {
              lastEventId = fields.id;
            }
            fields = { data: [] };
          } else if (line.startsWith(':')) {
            comments += 1;
          } else {
            const colon = line.indexOf(':');
            const name = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (name === 'event') fields.event = value;
            else if (name === 'data') fields.data.push(value);
            else if (name === 'id') fields.id = value;
          }
        }
      }
    } catch {
      // aborted by close(), or the connection broke: the stream has ended either way
    } finally {
      finished = true;
      wake();
    }
  })();

  async function next(timeoutMs = 10_000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    while (queue.length === 0) {
      if (finished) throw new Error('the event stream ended');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no event within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return queue.shift()!;
  }

  return {
    status: response.status,
    headers: response.headers,
    problem,
    next,
    async collect(until, timeoutMs = 10_000) {
      const events: SseEvent[] = [];
      for (;;) {
        const event = await next(timeoutMs);
        events.push(event);
        if (until(event)) return events;
      }
    },
    get comments() {
      return comments;
    },
    get lastEventId() {
      return lastEventId;
    },
    ended,
    close: () => controller.abort(),
  };
}
