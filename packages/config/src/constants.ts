// The accepted values of the enumerated variables, in a module of their own so
// that schema.ts (which parses with them) and types.ts (which derives types from
// them) do not import each other.

/** Asymmetric JOSE algorithms only: `none` and the HS* family are never accepted. */
export const ALLOWED_JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;

/**
 * Every value APP_ENV accepts; `staging` and `production` turn on production
 * hardening. Unset or empty, APP_ENV is `production`.
 */
export const APP_ENVS = ['development', 'test', 'staging', 'production'] as const;

/** Every value LOG_LEVEL accepts, most severe first (pino's levels). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
