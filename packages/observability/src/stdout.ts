import { writeSync } from 'node:fs';

/** A pino destination that also flushes (pino's `logger.flush()` calls `flush`). */
export interface LineWriter {
  /** Queues one line (with its newline) for the next batch; always returns true. */
  write(line: string): boolean;
  /** Writes the queued lines now, then calls `callback`. */
  flush(callback?: (error?: Error) => void): void;
  /** Writes the queued lines now, synchronously. */
  flushSync(): void;
}

// How long one batch may wait, in total, for a full pipe (EAGAIN) before it is dropped.
const MAX_BLOCKED_MS = 10_000;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * The default log destination (stdout, fd 1): lines queue in memory and are written to `fd`
 * once per event-loop turn, as one synchronous write
 * (docs/decisions/001-log-destination.md).
 *
 * - Cheap per line (an array push), one system call per batch.
 * - Ordered, and exact at exit: there is never a write in flight in another
 *   thread that a last flush could overtake.
 * - Bounded across turns: a reader that cannot keep up slows the process down
 *   (as pino's synchronous default does) instead of growing memory without
 *   limit. Within one turn, lines queue in memory until the turn ends.
 * - EPIPE (the reader has gone) stops logging instead of crashing.
 */
export function createLogDestination(fd = 1): LineWriter {
  let pending: string[] = [];
  let scheduled = false;
  let broken = false;

  const flushSync = (): void => {
    scheduled = false;
    if (pending.length === 0) return;
    const data = Buffer.from(pending.join(''));
    pending = [];
    if (broken) return;
    try {
      writeFully(fd, data);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') {
        broken = true;
        return;
      }
      process.stderr.write(
        `@flowforge/observability: ${data.length} bytes of log lines lost: ${(error as Error).message}\n`,
      );
    }
  };

  const writer: LineWriter = {
    write(line) {
      pending.push(line);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flushSync);
      }
      return true;
    },
    flush(callback) {
      flushSync();
      callback?.();
    },
    flushSync,
  };

  liveWriters.add(new WeakRef(writer));
  return writer;
}

// One exit hook for every destination, holding them weakly, so that creating
// many loggers (tests, several apps in one process) adds no listener each.
const liveWriters = new Set<WeakRef<LineWriter>>();
process.once('exit', () => {
  for (const ref of liveWriters) ref.deref()?.flushSync();
});

/** Writes all of `data`, across partial writes and a full non-blocking pipe. */
function writeFully(fd: number, data: Buffer): void {
  let offset = 0;
  let blockedMs = 0;
  while (offset < data.length) {
    try {
      offset += writeSync(fd, data, offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || blockedMs >= MAX_BLOCKED_MS)
        throw error;
      Atomics.wait(sleepCell, 0, 0, 1);
      blockedMs += 1;
    }
  }
}
