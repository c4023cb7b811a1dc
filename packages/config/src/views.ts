import { inspect } from 'node:util';
import { redactSettings, redactUrl } from './redact.js';
import type { DatabaseOnlySettings, Settings } from './types.js';

/**
 * The redacted view of every frozen settings object and section. Logging or
 * serialising one (`JSON.stringify`, `util.inspect`, pino) shows its view;
 * reading a field still gives the real value.
 */
const safeViews = new WeakMap<object, unknown>();

/**
 * The redacted view of a settings object or one of its sections; any other
 * value is returned as is. Loggers that copy objects before serialising them
 * (pino's redaction does) call this first, because a copy loses `toJSON`.
 *
 * @example
 * loggableSettings(settings.redis); // { url: 'redis://:[redacted]@…', password: '[redacted]', … }
 */
export function loggableSettings(value: unknown): unknown {
  return value !== null && typeof value === 'object' && safeViews.has(value)
    ? safeViews.get(value)
    : value;
}

/** Deep-freezes `settings`, the whole object and each section showing their redacted view when logged. */
export function freezeSettings(settings: Settings): Settings {
  // A plain deep copy taken before the hooks exist, so the view never points back at them.
  const safe = structuredClone(redactSettings(settings));
  attachSafeView(settings, safe);
  for (const [key, section] of Object.entries(settings)) {
    // Sections too, so that logging `settings.redis` alone is just as safe.
    if (section !== null && typeof section === 'object')
      attachSafeView(section as object, safe[key]);
  }
  return deepFreeze(settings);
}

/** {@link freezeSettings} for what `loadDatabaseSettings` returns. */
export function freezeDatabaseSettings(settings: DatabaseOnlySettings): DatabaseOnlySettings {
  const safe = {
    app: { ...settings.app },
    database: {
      ...settings.database,
      url: redactUrl(settings.database.url),
      migrationUrl: redactUrl(settings.database.migrationUrl),
    },
  };
  attachSafeView(settings, safe);
  attachSafeView(settings.app, safe.app);
  attachSafeView(settings.database, safe.database);
  return deepFreeze(settings);
}

function attachSafeView(target: object, view: unknown): void {
  safeViews.set(target, view);
  Object.defineProperty(target, 'toJSON', { value: () => view, enumerable: false });
  Object.defineProperty(target, inspect.custom, {
    value: (depth: number, options: object) => inspect(view, { ...options, depth }),
    enumerable: false,
  });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
