import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * What every log line written inside a request carries. `request_id` is set
 * when the request starts; auth binds `tenant_id` and `user_id` once it has
 * verified a principal; `trace_id`/`span_id` come from W3C traceparent.
 */
export interface RequestContext {
  /** The request id: the accepted inbound X-Request-ID, or a new UUID v4. */
  request_id: string;
  /** The verified principal's tenant, once auth has bound it. */
  tenant_id?: string;
  /** The verified principal's user id, once auth has bound it. */
  user_id?: string;
  /** The trace id (32 hex digits) of the inbound W3C `traceparent`. */
  trace_id?: string;
  /** The parent span id (16 hex digits) of the inbound W3C `traceparent`. */
  span_id?: string;
}

/** The fields that may be bound after a request has started. */
export type BindableContext = Partial<Pick<RequestContext, 'tenant_id' | 'user_id'>>;

const storage = new AsyncLocalStorage<RequestContext>();

/**
 * Runs `fn` with `context` as the current request context: every log line and
 * every `getRequestContext()` inside it, across awaits and timers, sees it.
 */
export function runWithRequestContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** The current request's context, or `undefined` outside a request. */
export function getRequestContext(): RequestContext | undefined {
  return storage.getStore();
}

/**
 * Adds fields to the current request's context (auth calls this with the
 * verified tenant and user). Returns false when called outside a request.
 */
export function bindRequestContext(fields: BindableContext): boolean {
  const store = storage.getStore();
  if (store === undefined) return false;
  if (fields.tenant_id !== undefined) store.tenant_id = fields.tenant_id;
  if (fields.user_id !== undefined) store.user_id = fields.user_id;
  return true;
}

// Values other packages keep per request (auth's verified principal), beside the
// context rather than in it: the context is what log lines carry.
const values = new WeakMap<RequestContext, Map<symbol, unknown>>();

/**
 * Keeps `value` under `key` for the rest of the current request (auth stores
 * its verified principal so that `getCurrentTenantId()` works anywhere in the
 * request). Never logged. Returns false when called outside a request.
 */
export function setRequestValue(key: symbol, value: unknown): boolean {
  const store = storage.getStore();
  if (store === undefined) return false;
  let map = values.get(store);
  if (!map) {
    map = new Map();
    values.set(store, map);
  }
  map.set(key, value);
  return true;
}

const REFUSAL_REASON = Symbol('flowforge.refusalReason');

/**
 * Names why the current request was refused (an error code such as
 * `TOKEN_INVALID` or `TOO_MANY_STREAMS`): its access line carries it as
 * `reason`, so a burst of 401s or 503s can be told apart without a second line.
 * The server kit calls this from its error handler. Returns false outside a request.
 */
export function setRefusalReason(reason: string): boolean {
  return setRequestValue(REFUSAL_REASON, reason);
}

/** The reason set by {@link setRefusalReason} for the request of `context`. @internal */
export function refusalReasonOf(context: RequestContext): string | undefined {
  const reason = values.get(context)?.get(REFUSAL_REASON);
  return typeof reason === 'string' ? reason : undefined;
}

/** The value kept under `key` in the current request, or `undefined`. */
export function getRequestValue(key: symbol): unknown {
  const store = storage.getStore();
  return store === undefined ? undefined : values.get(store)?.get(key);
}
