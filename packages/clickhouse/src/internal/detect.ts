import type { ClickHouseClient, ClickHouseSettings } from '@clickhouse/client';
import { ClickHouseError } from '../errors.js';
import type { BindingMode } from './binder.js';
import type { ServerProfile } from './options.js';
import { toClickHouseError } from './server-errors.js';

/** The settings whose presence and values shape every later query. */
const PROFILE_SETTINGS = [
  'readonly',
  'output_format_json_quote_64bit_integers',
  'output_format_json_quote_decimals',
  'cancel_http_readonly_queries_on_client_close',
] as const;

// Sent with no settings at all: works for every user (readonly=1 refuses any)
// on 18.16 as on 26.x, and `system.settings` shows the user's own values.
const PROFILE_SQL = `SELECT name, value, version() AS version FROM system.settings WHERE name IN (${PROFILE_SETTINGS.map(
  (name) => `'${name}'`,
).join(', ')}) FORMAT JSONEachRow`;

// A server without query parameters refuses `param_p` (18.16: "Unknown setting
// param_p", or 164 for a readonly=1 user) or the unbound `{p:UInt8}` (62).
const PROBE_SQL = 'SELECT {p:UInt8} AS p FORMAT JSONEachRow';

/** `undefined` makes the driver drop the key: nothing goes to the server. */
const NO_SETTINGS = { enable_http_compression: undefined } as unknown as ClickHouseSettings;

interface SettingRow {
  readonly name: string;
  readonly value: string;
  readonly version: string;
}

async function rowsOf<T>(
  client: ClickHouseClient,
  query: string,
  signal: AbortSignal,
  params?: Record<string, unknown>,
): Promise<T[]> {
  const result = await client.exec({
    query,
    abort_signal: signal,
    // No settings at all, not even the compression switch the driver adds itself.
    clickhouse_settings: NO_SETTINGS,
    ...(params === undefined ? {} : { query_params: params }),
  });
  let text = '';
  for await (const chunk of result.stream) text += String(chunk);
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as T);
}

/**
 * Learns the user's readonly level, which JSON settings to send and whether the
 * server binds `{name:Type}` parameters itself (`auto`: one probe query).
 * @throws {ClickHouseError} whatever the server or the connection answered (mapped)
 */
export async function detectProfile(
  client: ClickHouseClient,
  binding: 'auto' | BindingMode,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<ServerProfile> {
  const context = (): { aborted?: 'timeout' | 'closed'; timeoutMs: number } => ({
    ...(signal.aborted ? { aborted: signal.reason === 'closed' ? 'closed' : 'timeout' } : {}),
    timeoutMs,
  });
  const [settings, detected] = await Promise.all([
    rowsOf<SettingRow>(client, PROFILE_SQL, signal).catch((error: unknown) => {
      throw toClickHouseError(error, context());
    }),
    binding === 'auto'
      ? probeBinding(client, signal).catch((error: unknown) => {
          throw toClickHouseError(error, context());
        })
      : Promise.resolve(binding),
  ]);
  const values = new Map(settings.map((row) => [row.name, row.value]));
  const level = values.get('readonly');
  if (level !== '0' && level !== '1' && level !== '2') {
    throw new ClickHouseError(
      'QUERY_FAILED',
      `cannot tell the user's readonly level (system.settings gave ${JSON.stringify(level ?? null)})`,
    );
  }
  const exactJson: Record<string, 1> = {};
  for (const name of [
    'output_format_json_quote_64bit_integers',
    'output_format_json_quote_decimals',
  ]) {
    const value = values.get(name);
    if (value !== undefined && value !== '1') exactJson[name] = 1;
  }
  const cancel = values.get('cancel_http_readonly_queries_on_client_close');
  return {
    readonly: Number(level) as 0 | 1 | 2,
    binding: detected,
    exactJson,
    cancelOnClose: cancel !== undefined && cancel !== '1',
    version: settings[0]?.version ?? 'unknown',
  };
}

async function probeBinding(client: ClickHouseClient, signal: AbortSignal): Promise<BindingMode> {
  try {
    const rows = await rowsOf<{ p?: unknown }>(client, PROBE_SQL, signal, { p: 1 });
    return rows.length === 1 && Number(rows[0]?.p) === 1 ? 'server' : 'client';
  } catch (error) {
    // The server answered and refused the parameter (62 unbound placeholder, 115
    // unknown setting param_p, 164 a readonly=1 user "overriding" it): it cannot
    // bind. Anything else (unreachable, timeout, 202) says nothing and is rethrown.
    const serverCode = toClickHouseError(error).serverCode;
    if (serverCode === 62 || serverCode === 115 || serverCode === 164) return 'client';
    throw error;
  }
}
