import { networkFailureOf } from '@flowforge/kernel';
import { RedisError, type RedisErrorCode } from '../errors.js';

/** What the code of an error reply's first word is; anything else is COMMAND_FAILED. */
const REPLY_CODES: Readonly<Record<string, RedisErrorCode>> = {
  WRONGPASS: 'AUTH_FAILED',
  NOAUTH: 'AUTH_FAILED',
  NOPERM: 'PERMISSION_DENIED',
  READONLY: 'READ_ONLY',
  WRONGTYPE: 'WRONG_TYPE',
  CLUSTERDOWN: 'CLUSTER_DOWN',
  CROSSSLOT: 'INVALID_ARGUMENT',
  LOADING: 'UNAVAILABLE',
  MASTERDOWN: 'UNAVAILABLE',
  TRYAGAIN: 'UNAVAILABLE',
  BUSY: 'UNAVAILABLE',
};

const REPLY_MESSAGES: Partial<Record<RedisErrorCode, string>> = {
  AUTH_FAILED: 'the server refused the credentials',
  PERMISSION_DENIED: 'the server refused the command: the user lacks the permission (ACL)',
  READ_ONLY: 'the server refused a write: it is a read-only replica',
  WRONG_TYPE: 'the key holds another type of value',
  CLUSTER_DOWN: 'the cluster cannot serve this slot right now',
  INVALID_ARGUMENT: 'the keys of one call hash to different cluster slots',
  UNAVAILABLE: 'the server cannot serve commands right now',
};

/** The driver's messages for "not connected" (ioredis 6), matched exactly, never parsed. */
const NOT_CONNECTED_MESSAGES = new Set([
  'Connection is closed.',
  'None of startup nodes is available',
  'Cluster is ended.',
  'Cluster is disconnected.',
  'Command aborted due to connection close',
]);
const NOT_CONNECTED_PREFIXES = [
  "Stream isn't writeable",
  "Cluster isn't ready",
  'Too many Cluster redirections',
  'All sentinels are unreachable',
  'Failed to refresh slots cache',
];

interface DriverError {
  readonly name?: unknown;
  readonly message?: unknown;
  readonly syscall?: unknown;
}

/**
 * ioredis hangs the failed command on a reply error (`error.command = { name,
 * args }`); for HELLO and AUTH the args hold the password, and a logger that
 * serialises `cause` would print it. Keep the command's name only.
 */
function scrub(error: object): void {
  const command = (error as { command?: unknown }).command;
  if (typeof command === 'object' && command !== null && 'args' in command) {
    const name = (command as { name?: unknown }).name;
    (error as { command?: unknown }).command = { name: typeof name === 'string' ? name : '' };
  }
}

/** The first word of an error reply: `WRONGTYPE Operation against…` → `WRONGTYPE`. */
export function replyPrefix(message: string): string {
  const space = message.indexOf(' ');
  return space === -1 ? message : message.slice(0, space);
}

/**
 * Maps anything ioredis (or Node's socket) throws to a {@link RedisError}. Only
 * an error reply's first word is read; the rest of its text stays in `cause`.
 * The arguments ioredis attaches to the cause are removed (see scrub).
 */
export function toRedisError(error: unknown): RedisError {
  if (error instanceof RedisError) return error;
  if (typeof error === 'object' && error !== null) scrub(error);
  const driver = (typeof error === 'object' && error !== null ? error : {}) as DriverError;
  const name = typeof driver.name === 'string' ? driver.name : '';
  const message = typeof driver.message === 'string' ? driver.message : '';

  if (name === 'ReplyError') {
    const reply = replyPrefix(message);
    const code = REPLY_CODES[reply] ?? 'COMMAND_FAILED';
    const text = REPLY_MESSAGES[code] ?? 'the server answered with an error';
    return new RedisError(code, `${text} (${reply})`, { cause: error, reply });
  }
  if (message === 'Command timed out') {
    return new RedisError('TIMEOUT', 'no reply within commandTimeoutMs', { cause: error });
  }
  if (name === 'MaxRetriesPerRequestError') {
    return new RedisError('UNAVAILABLE', 'the connection was lost before the reply came', {
      cause: error,
    });
  }
  if (
    name === 'ClusterAllFailedError' ||
    NOT_CONNECTED_MESSAGES.has(message) ||
    NOT_CONNECTED_PREFIXES.some((prefix) => message.startsWith(prefix)) ||
    networkFailureOf(error) !== undefined ||
    // Any other failed socket call (Node sets `syscall` on those) is a connection problem too.
    typeof driver.syscall === 'string'
  ) {
    return new RedisError('UNAVAILABLE', 'not connected to Redis', { cause: error });
  }
  return new RedisError('COMMAND_FAILED', 'the command failed in the driver', { cause: error });
}
