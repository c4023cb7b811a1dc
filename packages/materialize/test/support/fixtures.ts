import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '@flowforge/observability';

/** A loopback port nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A debug-level logger whose JSON lines are kept for assertions. */
export function capturingLogger(): {
  logger: Logger;
  lines: () => Record<string, unknown>[];
  text: () => string;
} {
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      raw.push(chunk.toString());
      callback();
    },
  });
  const logger = createLogger({ level: 'debug', destination });
  return {
    logger,
    lines: () =>
      raw
        .join('')
        .split('\n')
        .filter((line) => line.length > 0)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    text: () => raw.join(''),
  };
}

/** Every string reachable from an error: message, stack, cause chain, own fields. */
export function everythingIn(error: unknown, depth = 0): string {
  if (depth > 5 || error === null || error === undefined) return '';
  if (typeof error === 'string') return error;
  if (typeof error === 'number' || typeof error === 'bigint' || typeof error === 'boolean') {
    return String(error);
  }
  if (typeof error !== 'object') return '';
  const record = error as Record<string, unknown>;
  const parts: string[] = [];
  if (error instanceof Error) parts.push(error.message, error.stack ?? '');
  for (const key of Object.getOwnPropertyNames(record)) {
    const value = record[key];
    parts.push(everythingIn(value, depth + 1));
  }
  return parts.join('\n');
}
