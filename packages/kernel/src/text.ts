/** What every FlowForge package writes in place of a secret, in logs, messages and settings. */
export const REDACTED = '[redacted]';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * True for a UUID in its canonical text form (any version, either case),
 * the form PostgreSQL's `uuid` and ClickHouse's `UUID` accept.
 */
export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/** `secret` as a URL's userinfo holds it (WHATWG encoding: `@` escaped, `+` kept). */
function asUserinfo(secret: string): string {
  const url = new URL('http://host');
  url.password = secret;
  return url.password;
}

/**
 * `text` with every occurrence of each non-empty secret replaced by
 * {@link REDACTED}, and of its percent-encoded forms: as a URL's userinfo
 * holds it (`url.href`) and as `encodeURIComponent` writes it.
 *
 * @example
 * ```ts
 * import { redactSecrets } from '@flowforge/kernel';
 *
 * console.log(redactSecrets('login as app:p@ss failed', ['p@ss'])); // "login as app:[redacted] failed"
 * ```
 */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    for (const form of new Set([secret, asUserinfo(secret), encodeURIComponent(secret)])) {
      out = out.split(form).join(REDACTED);
    }
  }
  return out;
}

/**
 * True for an origin exactly as a browser sends it in `Origin`
 * (`https://app.example.com`, `http://localhost:5173`): http or https, a host,
 * a port only when not the scheme's default, nothing after it. CORS
 * allow-lists are compared with the header as text, so anything else would
 * never match; `*` is not an origin (URL accepts it in a host name).
 */
export function isExactOrigin(value: string): boolean {
  const parsed = URL.parse(value);
  return (
    parsed !== null &&
    (parsed.protocol === 'http:' || parsed.protocol === 'https:') &&
    parsed.origin === value &&
    !value.includes('*')
  );
}
