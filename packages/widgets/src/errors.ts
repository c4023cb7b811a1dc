import {
  FlowForgeError,
  defineErrors,
  errorGuard,
  sharedErrorKinds,
  type ErrorCatalog,
  type ErrorGuard,
} from '@flowforge/kernel';

/**
 * Stable codes of {@link WidgetError}. Every message is written for clients:
 * it names a widget's config field or a variable, never a value.
 *
 * | code | status | when | retry? |
 * |---|---|---|---|
 * | `WIDGET_ID_INVALID` | 400 | `requireWidget`: the id is not a UUID | no: the request must change |
 * | `WIDGET_NOT_FOUND` | 404 | `requireWidget`: the tenant has no such widget (missing, or another tenant's: one answer for both) | no |
 * | `WIDGET_NOT_QUERYABLE` | 409 | the widget's kind or stored config does not allow what was asked (a live widget's data read, a metric widget streamed, a bad `config.metric`, `config.days` or `config.view`) | no: the widget must change |
 * | `WIDGET_CONFIG_INVALID` | 400 | `checkWidgetConfig`: a `kind` that is not exactly one of `WIDGET_KINDS`, a `config` that is not a JSON object, or one that breaks its kind's rules | no: the request must change |
 * | `WIDGET_CONFIG_TOO_LARGE` | 400 | `checkWidgetConfig`: the config's JSON is over `WIDGET_CONFIG_MAX_BYTES` | no: the request must change |
 * | `WIDGET_CONFIG_TOO_DEEP` | 400 | `checkWidgetConfig`: the config nests deeper than `WIDGET_CONFIG_MAX_DEPTH` | no: the request must change |
 * | `NOT_CONFIGURED` | 503 | a metric widget is read by a reader built without ClickHouse (`CLICKHOUSE_URL` is not set) | no: an operator must set it |
 * | `INVALID_OPTIONS` | 500 | {@link createWidgetDataReader} was given a bad option (`cacheTtlMs`) | no: a bug |
 */
export type WidgetErrorCode =
  | 'WIDGET_ID_INVALID'
  | 'WIDGET_NOT_FOUND'
  | 'WIDGET_NOT_QUERYABLE'
  | 'WIDGET_CONFIG_INVALID'
  | 'WIDGET_CONFIG_TOO_LARGE'
  | 'WIDGET_CONFIG_TOO_DEEP'
  | 'NOT_CONFIGURED'
  | 'INVALID_OPTIONS';

const WIDGET_ERRORS: ErrorCatalog<WidgetErrorCode> = defineErrors({
  source: '@flowforge/widgets',
  name: 'WidgetError',
  // Written for clients: they name a config field or a variable, never a value.
  clientSafe: true,
  codes: {
    ...sharedErrorKinds('NOT_CONFIGURED', 'INVALID_OPTIONS'),
    WIDGET_ID_INVALID: { status: 400, retryable: false },
    WIDGET_NOT_FOUND: { status: 404, retryable: false },
    WIDGET_NOT_QUERYABLE: { status: 409, retryable: false },
    WIDGET_CONFIG_INVALID: { status: 400, retryable: false },
    WIDGET_CONFIG_TOO_LARGE: { status: 400, retryable: false },
    WIDGET_CONFIG_TOO_DEEP: { status: 400, retryable: false },
  },
});

/** An error of @flowforge/widgets; its `reason` is safe to show a client. Switch on `code`. */
export class WidgetError extends FlowForgeError<WidgetErrorCode> {
  /**
   * @param code - one of {@link WidgetErrorCode}
   * @param reason - the explanation, written for clients; the message is `@flowforge/widgets: <reason>`
   * @param options - `cause`, when another error is behind this one
   */
  constructor(code: WidgetErrorCode, reason: string, options?: ErrorOptions) {
    super(WIDGET_ERRORS, code, reason, options);
  }
}

/** True when `error` is a {@link WidgetError} (optionally with one of `codes`). */
export const isWidgetError: ErrorGuard<WidgetError> = errorGuard(WidgetError);

/** The widget's kind or config does not allow what was asked: 409. */
export function widgetNotQueryable(reason: string): WidgetError {
  return new WidgetError('WIDGET_NOT_QUERYABLE', reason);
}
