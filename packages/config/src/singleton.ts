import { loadDatabaseSettings, loadSettings } from './schema.js';
import type { DatabaseOnlySettings, Settings } from './types.js';

let cached: Settings | undefined;

/**
 * The settings of this process: `process.env` parsed on first call, then the
 * same frozen object every time. Libraries should take typed options instead;
 * apps call this once at startup.
 *
 * @throws {ConfigError} when the environment is invalid (on every call until fixed).
 */
export function getSettings(): Settings {
  cached ??= loadSettings(process.env);
  return cached;
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
 * The lazily parsed singleton of `process.env`. Nothing is read until a field
 * is first accessed; then it is parsed once.
 *
 * @example
 * import { settings } from '@flowforge/config';
 * app.listen({ host: settings.app.host, port: settings.app.port });
 */
export const settings: Settings = new Proxy({} as Settings, {
  get: (_target, key) => Reflect.get(getSettings(), key) as unknown,
  has: (_target, key) => Reflect.has(getSettings(), key),
  ownKeys: () => Reflect.ownKeys(getSettings()),
  getOwnPropertyDescriptor: (_target, key) => {
    const descriptor = Reflect.getOwnPropertyDescriptor(getSettings(), key);
    // The proxy target is an empty extensible object, so descriptors must be configurable.
    return descriptor && { ...descriptor, configurable: true };
  },
  set: () => false,
  defineProperty: () => false,
  deleteProperty: () => false,
});
