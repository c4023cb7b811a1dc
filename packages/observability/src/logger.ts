import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Logger, type LoggerOptions as PinoOptions } from 'pino';
import { loggableSettings, type LogLevel } from '@flowforge/config';
import { REDACTED } from '@flowforge/kernel';
import { getRequestContext } from './context.js';
import { DEFAULT_REDACT_PATHS } from './redaction.js';
import { createLogDestination } from './stdout.js';

/** The part of `@opentelemetry/api` the logger uses, so that it stays an optional peer. */
export interface OpenTelemetryTraceApi {
  /** `trace` of `@opentelemetry/api`. */
  readonly trace: {
    /** The span active in the current async context, if any. */
    getActiveSpan():
      | {
          /** The span's identifiers. */
          spanContext(): {
            /** 32 hex digits. */
            traceId: string;
            /** 16 hex digits. */
            spanId: string;
          };
        }
      | undefined;
  };
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lowest level written. @default 'info' */
  readonly level?: LogLevel;
  /**
   * `json`: one JSON object a line (production). `pretty`: human-readable through
   * pino-pretty, an optional peer dependency that is never pulled in otherwise.
   * @default 'json'
   */
  readonly format?: 'json' | 'pretty';
  /** Service name, written as `service` on every line. */
  readonly service?: string;
  /**
   * Where JSON lines go. Default: {@link createLogDestination} on stdout, one
   * write per event-loop turn. Tests pass a stream.
   */
  readonly destination?: DestinationStream;
  /** Extra exact redaction paths, added to {@link DEFAULT_REDACT_PATHS}. */
  readonly redact?: readonly string[];
  /**
   * `@opentelemetry/api`, when the app uses it: lines written inside an active
   * span carry its trace_id and span_id (the W3C traceparent of the request otherwise).
   */
  readonly opentelemetry?: OpenTelemetryTraceApi;
}

/** A pino logger (FlowForge's loggers are plain pino loggers). */
export type { Logger } from 'pino';

/**
 * Creates the process logger. Every line written inside a request carries the
 * request context (request_id, and tenant_id / user_id / trace_id / span_id once
 * known) without passing a logger around; secrets on the default paths are
 * redacted.
 *
 * @example
 * const logger = createLogger({ level: settings.app.logLevel, format: settings.app.logFormat, service: settings.app.name });
 * logger.info({ dashboard_id }, 'dashboard created'); // + request_id, tenant_id, user_id
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const otel = options.opentelemetry;
  const pinoOptions: PinoOptions = {
    level: options.level ?? 'info',
    base:
      options.service === undefined
        ? { pid: process.pid }
        : { service: options.service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }), log: swapSettingsForSafeViews },
    redact: {
      paths: [...DEFAULT_REDACT_PATHS, ...(options.redact ?? [])],
      // The one marker of every FlowForge package, as settings objects redact themselves.
      censor: REDACTED,
    },
    // A fresh object every line: pino's default merge writes into what mixin returns.
    mixin: () => {
      const context = getRequestContext();
      const span = otel?.trace.getActiveSpan()?.spanContext();
      if (context === undefined) {
        return span === undefined ? {} : { trace_id: span.traceId, span_id: span.spanId };
      }
      const fields: Record<string, string> = { request_id: context.request_id };
      if (context.tenant_id !== undefined) fields.tenant_id = context.tenant_id;
      if (context.user_id !== undefined) fields.user_id = context.user_id;
      const traceId = span?.traceId ?? context.trace_id;
      const spanId = span?.spanId ?? context.span_id;
      if (traceId !== undefined && spanId !== undefined) {
        fields.trace_id = traceId;
        fields.span_id = spanId;
      }
      return fields;
    },
  };

  const destination =
    options.format === 'pretty' ? prettyStream() : (options.destination ?? createLogDestination());
  const logger = pino(pinoOptions, destination);
  const base = JSON.stringify(pinoOptions.base).slice(1, -1);
  // The ISO time is formatted once per millisecond, not once per line.
  let lastMs = 0;
  let lastIso = '';
  lineWriters.set(logger, (level, body) => {
    if (!logger.isLevelEnabled(level)) return;
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      lastIso = new Date(now).toISOString();
    }
    destination.write(`{"level":"${level}","time":"${lastIso}",${base},${body}}\n`);
  });
  return logger;
}

/**
 * Writes one line of trusted, already-serialised fields (`"a":1,"b":"x"`) in the
 * exact shape of this logger's lines, skipping pino's per-line work (mixin,
 * redaction, serialisation). For the access line, which is written on every
 * request and whose fields are fixed and never secret.
 */
export type RawLineWriter = (level: 'info' | 'warn' | 'error', body: string) => void;

const lineWriters = new WeakMap<Logger, RawLineWriter>();

/** The raw line writer of a logger made by {@link createLogger}; undefined for any other pino logger. */
export function rawLineWriter(logger: Logger): RawLineWriter | undefined {
  return lineWriters.get(logger);
}

/**
 * A settings object logged as a field is replaced by its redacted view before
 * pino's redaction runs: redaction copies an object whose path it censors, and
 * the copy would lose the settings' own toJSON guard (a URL with a password
 * would then be written as is).
 */
function swapSettingsForSafeViews(object: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key in object) {
    const value = object[key];
    if (value !== null && typeof value === 'object') {
      const safe = loggableSettings(value);
      if (safe !== value) {
        copy ??= { ...object };
        copy[key] = safe;
      }
    }
  }
  return copy ?? object;
}

/** pino-pretty when installed (development); JSON to stdout, with a warning, when not. */
function prettyStream(): DestinationStream {
  try {
    const require = createRequire(import.meta.url);
    const pretty = require('pino-pretty') as (options: object) => DestinationStream;
    // Synchronous: development output is for a person, and must not lose the
    // shutdown lines written just before process.exit.
    return pretty({
      colorize: process.stdout.isTTY,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      sync: true,
    });
  } catch {
    process.stderr.write(
      '@flowforge/observability: pino-pretty is not installed; writing JSON logs\n',
    );
    return pino.destination({ dest: 1, sync: true });
  }
}

/**
 * Writes out whatever the logger has buffered. Call it during shutdown, after
 * the last line and before `process.exit`, so that no line is lost.
 */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve, reject) => {
    logger.flush((error) => {
      // A sonic-boom destination (pino.destination) ends a flush with fsync,
      // which pipes and terminals refuse (EINVAL / ENOTSUP) after the bytes
      // have been written: that is success.
      const code = (error as NodeJS.ErrnoException | null | undefined)?.code;
      if (error && code !== 'EINVAL' && code !== 'ENOTSUP') reject(error);
      else resolve();
    });
  });
}
