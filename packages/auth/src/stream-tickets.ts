/**
 * Single-use stream tickets.
 *
 * A browser's `EventSource` cannot send `Authorization` or an API-key header, so a page first
 * asks for a ticket with its usual credentials (`issue`), then opens the stream with the ticket
 * in the URL (`redeem`). A ticket is `fft_` + 32 random bytes in base64url (47 characters); it
 * stands for the principal that got it, the widgets it may stream and where each resumes, for
 * `ttlMs` (30 s) and for one redemption.
 *
 * What is kept is the JSON of that grant under the SHA-256 of the ticket, never the ticket: a
 * dump of the store (or a log of its keys) holds nothing that opens a stream. Redemption is a
 * GET then a DEL, and only the caller whose DEL removed the key gets the grant: two redemptions
 * of one ticket at once, on one instance or two, give one stream. Kept in Redis keys the app
 * owns (@flowforge/redis's `OwnedKeyspace`), any instance redeems what another issued; without
 * Redis, in this process's memory, bounded.
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { isTenantId } from '@flowforge/db';
import { OptionChecks, isUuid } from '@flowforge/kernel';
import type { Logger, Metrics } from '@flowforge/observability';
import { AuthError, isAuthError } from './errors.js';
import { deepFreeze } from './internal/deep-freeze.js';
import { MemoryKeyspace } from './internal/memory-keyspace.js';
import { failureCounter, type FailureCounter } from './internal/metrics.js';
import { hasStoreShape } from './internal/store-shape.js';
import type { KeyspaceStore } from './keyspace-store.js';
import {
  assertWidgetScope,
  credentialExpiresAt,
  type AuthMethod,
  type Principal,
} from './principal.js';

/**
 * The prefix of the Redis keys an app hands {@link createStreamTickets} as its store
 * (`redis.ownedKeyspace(STREAM_TICKET_PREFIX)`): one keyspace, so every instance of a
 * deployment redeems the tickets any of them issued.
 */
export const STREAM_TICKET_PREFIX = 'flowforge:auth:stream-tickets:';

/** The most widgets one ticket (one stream) may carry. */
export const STREAM_TICKET_MAX_WIDGETS = 16;

/** Options of {@link createStreamTickets}. */
export interface StreamTicketsOptions {
  /** How long a ticket may wait to be redeemed, in milliseconds, 1000 to 600000. @default 30000 */
  readonly ttlMs?: number;
  /**
   * Where tickets are kept: Redis keys the app owns
   * (`redis.ownedKeyspace(STREAM_TICKET_PREFIX)`), shared by every instance. `null` or absent:
   * this process's memory, so a ticket opens a stream only on the instance that issued it
   * (behind a load balancer, that needs sticky sessions or one instance).
   * @default null
   */
  readonly store?: KeyspaceStore | null;
  /**
   * In memory (`store: null`) only: the most live tickets held, 1 to 1000000; past it `issue`
   * refuses with TICKETS_FULL (503, with the seconds until the oldest expires) rather than
   * forget a ticket someone holds. @default 10000
   */
  readonly maxTickets?: number;
  /** Gets a warning when the store starts failing (info when it is back) and when a ticket is redeemed twice at once; debug lines for issues and refusals. Never a ticket. */
  readonly logger?: Logger;
  /** Counts refused redemptions in `flowforge_auth_failures_total{reason}` (`ticket_invalid`, `store_unavailable`). */
  readonly metrics?: Metrics;
  /** The clock, in epoch milliseconds: ticket expiry. @default Date.now */
  readonly now?: () => number;
}

/** What a ticket is asked for: the second argument of {@link StreamTickets.issue}. */
export interface StreamTicketRequest {
  /**
   * The widgets of the stream: 1 to {@link STREAM_TICKET_MAX_WIDGETS} UUIDs, each once (case
   * does not count; they are lower-cased). Whether each exists and is live is the app's check.
   */
  readonly widgetIds: readonly string[];
  /**
   * Where each widget's stream resumes: its last progress frontier, 1 to 20 digits, keyed by a
   * widget id of `widgetIds`. A widget left out starts with a snapshot.
   */
  readonly resume?: Readonly<Record<string, string>> | null;
}

/** A ticket just issued: hand `ticket` to the client once; it is never logged or stored. */
export interface IssuedTicket {
  /** `fft_` + 43 base64url characters: the stream's credential, single use. */
  readonly ticket: string;
  /** When the ticket can no longer be redeemed. */
  readonly expiresAt: Date;
}

/** What a redeemed ticket grants: the second request acts as the first one's principal. */
export interface RedeemedTicket {
  /** The principal that got the ticket, as its credential was verified then. */
  readonly principal: Principal;
  /** The widgets of the stream, lower-cased, in the order asked for. */
  readonly widgetIds: readonly string[];
  /** Each resumed widget's frontier (digits), keyed by its lower-cased id. */
  readonly resume: Readonly<Record<string, string>>;
  /**
   * When the credential that got the ticket stops working (see `credentialExpiresAt`): the
   * stream must end then (`event: credential-expired`), at once if it is already past.
   * `null`: never (the dev principal, a key without expiry).
   */
  readonly credentialExpiresAt: Date | null;
}

/** Issues and redeems single-use stream tickets; see {@link createStreamTickets}. */
export interface StreamTickets {
  /**
   * A ticket for `principal` to open one stream of `request.widgetIds` with.
   * @throws {AuthError} INPUT_INVALID (400) for no widgets, more than
   *   {@link STREAM_TICKET_MAX_WIDGETS}, one that is not a UUID or is named twice, or a resume
   *   point that is not 1 to 20 digits or names a widget not asked for; INSUFFICIENT_SCOPE (403)
   *   when an API key does not cover a widget; STORE_UNAVAILABLE (503) when the store fails;
   *   TICKETS_FULL (503) in memory past `maxTickets`; NO_PRINCIPAL (500) for something that is
   *   not a principal.
   */
  issue(principal: Principal, request: StreamTicketRequest): Promise<IssuedTicket>;
  /**
   * The grant of `ticket`, once: the ticket is gone after this, whoever redeemed it.
   * @throws {AuthError} TICKET_INVALID (401) for a ticket that is malformed, unknown, already
   *   redeemed or expired (one message for all); STORE_UNAVAILABLE (503) when the store fails.
   */
  redeem(ticket: unknown): Promise<RedeemedTicket>;
  /** How long a ticket lives, in milliseconds. */
  readonly ttlMs: number;
  /** Where tickets live: `store` (shared) or `memory` (this process). */
  readonly backend: 'store' | 'memory';
}

const TICKET_PREFIX = 'fft_';
const TICKET_BYTES = 32;
/**
 * `fft_` and 32 bytes in canonical base64url: 42 characters, then one whose 4 unused bits are
 * zero. Anything else is refused before the store is asked.
 */
const TICKET_FORMAT = /^fft_[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const FRONTIER_FORMAT = /^[0-9]{1,20}$/;
/** One message for malformed, unknown, used and expired tickets: nothing is revealed. */
const INVALID_TICKET_MESSAGE = 'invalid stream ticket';
const METHODS: readonly AuthMethod[] = ['dev', 'jwt', 'api_key'];
/** The version of the stored grant: a later release reading an older one knows what it holds. */
const GRANT_VERSION = 1;

/** The principal as stored: dates as epoch milliseconds. */
type StoredPrincipal = Omit<Principal, 'expiresAt'> & { readonly expiresAt?: number | null };

/** The JSON kept under a ticket's hash. */
interface StoredGrant {
  readonly v: typeof GRANT_VERSION;
  /** When the ticket expires (epoch ms): checked on redemption too, whatever the store did. */
  readonly exp: number;
  readonly principal: StoredPrincipal;
  readonly widgetIds: readonly string[];
  readonly resume: Readonly<Record<string, string>>;
  readonly credentialExpiresAt: number | null;
}

const invalidInput = (message: string): AuthError => new AuthError('INPUT_INVALID', message);

/** The widget ids, checked and lower-cased. */
function widgetIdsOf(request: StreamTicketRequest): string[] {
  const given: unknown = request.widgetIds;
  if (!Array.isArray(given) || given.length === 0) {
    throw invalidInput('a stream ticket needs at least one widget id');
  }
  if (given.length > STREAM_TICKET_MAX_WIDGETS) {
    throw invalidInput(`a stream ticket carries at most ${STREAM_TICKET_MAX_WIDGETS} widgets`);
  }
  const ids: string[] = [];
  for (const value of given) {
    // The value is not echoed: it may be anything.
    if (!isUuid(value)) throw invalidInput('widget ids must be UUIDs');
    const id = value.toLowerCase();
    if (ids.includes(id)) throw invalidInput('each widget may be named once');
    ids.push(id);
  }
  return ids;
}

/** The resume points, checked, keyed by lower-cased widget id. */
function resumeOf(
  request: StreamTicketRequest,
  widgetIds: readonly string[],
): Record<string, string> {
  const given: unknown = request.resume;
  const resume: Record<string, string> = {};
  if (given === undefined || given === null) return resume;
  if (typeof given !== 'object' || Array.isArray(given)) {
    throw invalidInput('resume must map widget ids to frontiers');
  }
  for (const [key, frontier] of Object.entries(given as Record<string, unknown>)) {
    const id = key.toLowerCase();
    if (!widgetIds.includes(id)) {
      throw invalidInput('resume names a widget that is not among the widget ids');
    }
    if (Object.hasOwn(resume, id)) throw invalidInput('resume names a widget twice');
    if (typeof frontier !== 'string' || !FRONTIER_FORMAT.test(frontier)) {
      throw invalidInput('a resume point must be 1 to 20 digits');
    }
    resume[id] = frontier;
  }
  return resume;
}

/** `principal` as stored; NO_PRINCIPAL for anything our verifiers would not have made. */
function storedPrincipalOf(principal: Principal): StoredPrincipal {
  if (
    typeof principal !== 'object' ||
    principal === null ||
    typeof principal.userId !== 'string' ||
    !isTenantId(principal.tenantId) ||
    !METHODS.includes(principal.method)
  ) {
    throw new AuthError('NO_PRINCIPAL', 'a stream ticket is issued to an authenticated principal');
  }
  return {
    userId: principal.userId,
    tenantId: principal.tenantId,
    roles: principal.roles,
    claims: principal.claims,
    method: principal.method,
    ...(principal.widgetIds === undefined ? {} : { widgetIds: principal.widgetIds }),
    ...(principal.apiKeyId === undefined ? {} : { apiKeyId: principal.apiKeyId }),
    ...(principal.expiresAt === undefined
      ? {}
      : { expiresAt: principal.expiresAt === null ? null : principal.expiresAt.getTime() }),
  };
}

const isStringArray = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((item) => typeof item === 'string');
const isTime = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value);

/** The grant stored under a ticket, or null for anything this release did not write. */
function grantOf(text: string): StoredGrant | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const grant = value as Partial<Record<keyof StoredGrant, unknown>>;
  const principal = grant.principal as Partial<Record<keyof StoredPrincipal, unknown>> | null;
  const resume = grant.resume;
  const valid =
    grant.v === GRANT_VERSION &&
    isTime(grant.exp) &&
    isStringArray(grant.widgetIds) &&
    typeof resume === 'object' &&
    resume !== null &&
    Object.values(resume).every((frontier) => typeof frontier === 'string') &&
    (grant.credentialExpiresAt === null || isTime(grant.credentialExpiresAt)) &&
    typeof principal === 'object' &&
    principal !== null &&
    typeof principal.userId === 'string' &&
    isTenantId(principal.tenantId) &&
    isStringArray(principal.roles) &&
    typeof principal.claims === 'object' &&
    principal.claims !== null &&
    METHODS.includes(principal.method as AuthMethod) &&
    (principal.widgetIds === undefined || isStringArray(principal.widgetIds)) &&
    (principal.apiKeyId === undefined || typeof principal.apiKeyId === 'string') &&
    (principal.expiresAt === undefined ||
      principal.expiresAt === null ||
      isTime(principal.expiresAt));
  return valid ? (value as StoredGrant) : null;
}

/** The principal of a stored grant, frozen as the verifiers freeze theirs. */
function principalOf(stored: StoredPrincipal): Principal {
  return Object.freeze({
    userId: stored.userId,
    tenantId: stored.tenantId,
    roles: Object.freeze([...stored.roles]),
    claims: deepFreeze(stored.claims),
    method: stored.method,
    ...(stored.widgetIds === undefined ? {} : { widgetIds: Object.freeze([...stored.widgetIds]) }),
    ...(stored.apiKeyId === undefined ? {} : { apiKeyId: stored.apiKeyId }),
    ...(stored.expiresAt === undefined
      ? {}
      : { expiresAt: stored.expiresAt === null ? null : new Date(stored.expiresAt) }),
  });
}

/**
 * Makes the issuer and redeemer of stream tickets. Make one per process and share it between
 * the routes that issue tickets and the stream route that redeems them.
 *
 * @throws {AuthError} INVALID_OPTIONS for a `ttlMs` or `maxTickets` out of range, or a `store`
 *   without `prefix`, `get`, `set` and `del`.
 * @example
 * const tickets = createStreamTickets({
 *   store: redis?.ownedKeyspace(STREAM_TICKET_PREFIX) ?? null,
 *   logger,
 * });
 * // POST /api/v1/live/tickets, after bearer(auth):
 * const { ticket, expiresAt } = await tickets.issue(principal, { widgetIds, resume });
 * // GET /live/v1/stream?ticket=…, no header authentication:
 * const { principal, widgetIds, resume, credentialExpiresAt } = await tickets.redeem(query.ticket);
 */
export function createStreamTickets(options: StreamTicketsOptions = {}): StreamTickets {
  const checks = new OptionChecks();
  const ttlMs = checks.wholeNumber('ttlMs', options.ttlMs, { min: 1_000, max: 600_000 }, 30_000);
  const maxTickets = checks.wholeNumber(
    'maxTickets',
    options.maxTickets,
    { min: 1, max: 1_000_000 },
    10_000,
  );
  const given = options.store ?? null;
  if (given !== null && !hasStoreShape(given, ['get', 'set', 'del'])) {
    checks.problem('store: expected a KeyspaceStore (prefix, get, set, del)');
  }
  checks.throwIfAny((message) => new AuthError('INVALID_OPTIONS', message));
  const now = options.now ?? Date.now;
  const { logger } = options;
  const failures: FailureCounter | undefined = options.metrics
    ? failureCounter(options.metrics)
    : undefined;
  const store: KeyspaceStore =
    given ??
    new MemoryKeyspace(STREAM_TICKET_PREFIX, maxTickets, now, (retryAfterMs) => {
      const retryAfterSeconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
      logger?.warn(
        { max_tickets: maxTickets, retry_after_s: retryAfterSeconds },
        'stream tickets: the in-process store is full; refusing new tickets until the oldest expire',
      );
      return new AuthError(
        'TICKETS_FULL',
        `too many stream tickets are waiting; try again in ${retryAfterSeconds} s`,
        { retryAfterSeconds },
      );
    });

  let storeFailing = false;
  /** Runs a store call; a failure is STORE_UNAVAILABLE, logged once until the store is back. */
  async function guarded<T>(run: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await run();
    } catch (error) {
      if (isAuthError(error)) throw error; // TICKETS_FULL from the memory store
      if (!storeFailing) {
        storeFailing = true;
        logger?.warn(
          { err: error },
          'stream tickets: the store failed; tickets are refused (503) until it is back',
        );
      }
      throw new AuthError('STORE_UNAVAILABLE', 'the stream ticket store is unavailable', {
        cause: error,
      });
    }
    if (storeFailing) {
      storeFailing = false;
      logger?.info('stream tickets: the store is back');
    }
    return result;
  }

  const keyOf = (ticket: string): string =>
    store.prefix + createHash('sha256').update(ticket, 'utf8').digest('base64url');

  function refuse(why: string): AuthError {
    failures?.inc({ reason: 'ticket_invalid' });
    logger?.debug({ reason: why }, 'stream ticket refused');
    return new AuthError('TICKET_INVALID', INVALID_TICKET_MESSAGE);
  }

  return {
    ttlMs,
    backend: given === null ? 'memory' : 'store',

    async issue(principal, request) {
      const stored = storedPrincipalOf(principal);
      if (typeof request !== 'object' || request === null) {
        throw invalidInput('a stream ticket needs widget ids');
      }
      const widgetIds = widgetIdsOf(request);
      const resume = resumeOf(request, widgetIds);
      for (const id of widgetIds) assertWidgetScope(principal, id);
      const credentialExpires = credentialExpiresAt(principal);
      const ticket = TICKET_PREFIX + randomBytes(TICKET_BYTES).toString('base64url');
      const exp = now() + ttlMs;
      const grant: StoredGrant = {
        v: GRANT_VERSION,
        exp,
        principal: stored,
        widgetIds,
        resume,
        credentialExpiresAt: credentialExpires === null ? null : credentialExpires.getTime(),
      };
      // NX: 256 random bits never collide; if the store says they did, it is not storing.
      const created = await guarded(() =>
        store.set(keyOf(ticket), JSON.stringify(grant), { ttlMs, onlyIfAbsent: true }),
      );
      if (!created) {
        throw new AuthError('STORE_UNAVAILABLE', 'the stream ticket store is unavailable');
      }
      logger?.debug(
        { tenant_id: stored.tenantId, auth_method: stored.method, widgets: widgetIds.length },
        'stream ticket issued',
      );
      return { ticket, expiresAt: new Date(exp) };
    },

    async redeem(ticket) {
      if (typeof ticket !== 'string' || !TICKET_FORMAT.test(ticket)) throw refuse('malformed');
      const key = keyOf(ticket);
      let text: string | null;
      let removed: number;
      try {
        text = await guarded(() => store.get(key));
        if (text === null) throw refuse('unknown');
        // Only the DEL that removed the key wins: of two redemptions at once, both may read
        // the grant, but one DEL finds it gone.
        removed = await guarded(() => store.del(key));
      } catch (error) {
        if (isAuthError(error, 'STORE_UNAVAILABLE')) failures?.inc({ reason: 'store_unavailable' });
        throw error;
      }
      const grant = grantOf(text);
      if (removed !== 1) {
        logger?.warn(
          grant === null ? {} : { tenant_id: grant.principal.tenantId },
          'a stream ticket was redeemed twice at once; only one of them got the stream',
        );
        throw refuse('used');
      }
      if (grant === null) {
        logger?.warn('stream tickets: a stored grant could not be read; the ticket is refused');
        throw refuse('unreadable');
      }
      if (grant.exp <= now()) throw refuse('expired');
      return Object.freeze({
        principal: principalOf(grant.principal),
        widgetIds: Object.freeze([...grant.widgetIds]),
        resume: Object.freeze({ ...grant.resume }),
        credentialExpiresAt:
          grant.credentialExpiresAt === null ? null : new Date(grant.credentialExpiresAt),
      });
    },
  };
}
