import { inspect } from 'node:util';
import { loadDatabaseSettings, loadSettings } from './schema.js';
import type { DatabaseOnlySettings, Settings } from './types.js';

let cached: Settings | undefined;

/** `process.env` parsed on first call, then the same frozen object; throws ConfigError until it parses. */
function current(): Settings {
  cached ??= loadSettings(process.env);
  return cached;
}

/**
 * The proxy's target. `util.inspect` (console.log) reads a proxy's target,
 * never its traps: this one shows the settings' own redacted view.
 */
function inspectableTarget(): Settings {
  const target = {};
  Object.defineProperty(target, inspect.custom, {
    value: (depth: number, options: object) => inspect(current(), { ...options, depth }),
    configurable: true,
    enumerable: false,
  });
  return target as Settings;
}

/**
 * APP_ENV and the DATABASE_* variables of `process.env`, parsed now (not
 * cached) by {@link loadDatabaseSettings}: for tools such as the `flowforge-db`
 * migration CLI that must not require the rest of the settings.
 *
 * @throws {ConfigError} when one of those variables is invalid.
 */
export function getDatabaseSettings(): DatabaseOnlySettings {
  return loadDatabaseSettings(process.env);
}

/**
 * The settings of this process: the lazily parsed singleton of `process.env`.
 * Nothing is read until a field is first accessed; then it is parsed once and
 * every later access reads the same frozen object. Libraries take typed
 * options instead; apps read it at startup.
 *
 * Touching any field throws {@link ConfigError} while the environment is
 * invalid, so an app checks it once, first thing (`settings.app` in a `try`).
 *
 * @example
 * import { settings } from '@flowforge/config';
 * app.listen({ host: settings.app.host, port: settings.app.port });
 */
export const settings: Settings = new Proxy(inspectableTarget(), {
  get: (_target, key) => Reflect.get(current(), key) as unknown,
  has: (_target, key) => Reflect.has(current(), key),
  ownKeys: () => Reflect.ownKeys(current()),
  getOwnPropertyDescriptor: (_target, key) => {
    const descriptor = Reflect.getOwnPropertyDescriptor(current(), key);
    // The proxy target is an empty extensible object, so descriptors must be configurable.
    return descriptor && { ...descriptor, configurable: true };
  },
  set: () => false,
  defineProperty: () => false,
  deleteProperty: () => false,
});
