import type { ClickHouseClient, CommandParams } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { logCapture } from '../../test/support/log-capture.js';
import { ManualClock } from '../../test/support/manual-clock.js';
import { createQueryKiller } from './query-killer.js';

/** A driver whose command() waits until the test settles it. */
function commands() {
  const sent: { params: CommandParams; settle: (error?: Error) => void }[] = [];
  const client: Pick<ClickHouseClient, 'command'> = {
    command: (params) =>
      new Promise((resolve, reject) => {
        sent.push({
          params,
          settle: (error) => (error ? reject(error) : resolve({} as never)),
        });
      }),
  };
  return { sent, client };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setup(compression = false) {
  const clock = new ManualClock();
  const closing = new AbortController();
  const { sent, client } = commands();
  const { lines, logger } = logCapture();
  const kill = createQueryKiller({
    client,
    closing: closing.signal,
    timeoutMs: 1_000,
    compression,
    logger,
    name: 'reports',
    clock,
  });
  return { clock, closing, sent, lines, kill };
}

describe('createQueryKiller', () => {
  it('sends KILL QUERY for the id, quoted, as a readonly=1 user may', () => {
    const { sent, kill } = setup();
    kill("req-1:o'hara\\x");
    expect(sent).toHaveLength(1);
    expect(sent[0]?.params.query).toBe("KILL QUERY WHERE query_id = 'req-1:o\\'hara\\\\x' ASYNC");
    expect(sent[0]?.params.clickhouse_settings).toEqual({ readonly: 1 });
  });

  it('drops the driver’s compression switch from the kill’s settings', () => {
    const { sent, kill } = setup(true);
    kill('q');
    const settings = sent[0]?.params.clickhouse_settings as Record<string, unknown>;
    expect(Object.keys(settings)).toEqual(['enable_http_compression', 'readonly']);
    expect(settings.enable_http_compression).toBeUndefined();
  });

  it('gives up on the kill at its deadline, and disarms the deadline once it settled', async () => {
    const { clock, sent, kill } = setup();
    kill('slow');
    kill('fast');
    const [slow, fast] = sent;
    expect(clock.pending).toBe(2);
    fast?.settle();
    await settle();
    expect(clock.pending).toBe(1);
    clock.advance(1_000);
    expect(slow?.params.abort_signal?.aborted).toBe(true);
    expect(fast?.params.abort_signal?.aborted).toBe(false);
  });

  it('sends nothing once the handle closes, and aborts a kill in flight', () => {
    const { closing, sent, kill } = setup();
    kill('a');
    closing.abort('closed');
    expect(sent[0]?.params.abort_signal?.aborted).toBe(true);
    kill('b');
    expect(sent).toHaveLength(1);
  });

  it('logs the outcome at debug, never throws it', async () => {
    const { sent, lines, kill } = setup();
    kill('ok-id');
    kill('refused-id');
    sent[0]?.settle();
    sent[1]?.settle(new Error('Code: 164. readonly'));
    await settle();
    expect(lines.map((line) => [line.level, line.query_id, line.msg])).toEqual([
      ['debug', 'ok-id', 'clickhouse: killed a query given up on'],
      ['debug', 'refused-id', 'clickhouse: could not kill a query given up on'],
    ]);
    expect(lines[1]).toMatchObject({
      clickhouse: 'reports',
      err: { message: 'Code: 164. readonly' },
    });
  });
});
