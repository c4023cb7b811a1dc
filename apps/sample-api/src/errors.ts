import {
  FlowForgeError,
  defineErrors,
  errorGuard,
  type ErrorCatalog,
  type ErrorGuard,
} from '@flowforge/kernel';

/**
 * The app's own errors, declared like every package's (a table of codes with
 * status and retryability), so one error handler answers all of them.
 *
 * | code | status | when |
 * |---|---|---|
 * | `STORE_NOT_CONFIGURED` | 503 | a route needs a store whose variable is not set (`store`, `variable` say which) |
 * | `WIDGET_NOT_QUERYABLE` | 409 | the widget's kind or config does not allow what was asked (a metric widget streamed, a bad `config.view`) |
 */
export type AppErrorCode = 'STORE_NOT_CONFIGURED' | 'WIDGET_NOT_QUERYABLE';

const APP_ERRORS: ErrorCatalog<AppErrorCode> = defineErrors({
  source: 'sample-api',
  name: 'AppError',
  // Written for clients: they name a variable or a widget's config, never a value.
  clientSafe: true,
  codes: {
    STORE_NOT_CONFIGURED: { status: 503, retryable: false },
    WIDGET_NOT_QUERYABLE: { status: 409, retryable: false },
  },
});

/** An error of the app itself; its message is safe to show a client. */
export class AppError extends FlowForgeError<AppErrorCode> {
  /** For `STORE_NOT_CONFIGURED`: the store (`ClickHouse`) and its variable (`CLICKHOUSE_URL`). */
  readonly store: string | undefined;
  readonly variable: string | undefined;

  constructor(
    code: AppErrorCode,
    message: string,
    options?: ErrorOptions & { store?: string; variable?: string },
  ) {
    super(APP_ERRORS, code, message, options);
    this.store = options?.store;
    this.variable = options?.variable;
  }
}

/** True when `error` is an {@link AppError} (optionally with one of `codes`). */
export const isAppError: ErrorGuard<AppError> = errorGuard(AppError);

/** A route needs `store`, whose `variable` is not set: 503 naming the variable. */
export function storeNotConfigured(store: string, variable: string): AppError {
  return new AppError('STORE_NOT_CONFIGURED', `${store} is not configured: set ${variable}.`, {
    store,
    variable,
  });
}

/** The widget's kind or config does not allow what was asked: 409. */
export function widgetNotQueryable(message: string, options?: ErrorOptions): AppError {
  return new AppError('WIDGET_NOT_QUERYABLE', message, options);
}
