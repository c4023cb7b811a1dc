import { describe, expect, it } from 'vitest';
import { logCapture } from '../../test/support/log-capture.js';
import { ManualClock } from '../../test/support/manual-clock.js';
import { ClickHouseError } from '../errors.js';
import type { ServerProfile } from './options.js';
import { logDetection, ServerDetection } from './server-detection.js';

const PROFILE: ServerProfile = {
  readonly: 1,
  binding: 'client',
  exactJson: {},
  cancelOnClose: false,
  version: '18.16.1',
};

/** A detection the test settles by hand, with the signal it was given. */
interface Pending {
  readonly signal: AbortSignal;
  resolve(profile: ServerProfile): void;
  reject(error: Error): void;
}

function setup(options: { ttlMs?: number; timeoutMs?: number } = {}) {
  const clock = new ManualClock();
  const closing = new AbortController();
  const runs: Pending[] = [];
  const detection = new ServerDetection({
    detect: (signal) =>
      new Promise<ServerProfile>((resolve, reject) => runs.push({ signal, resolve, reject })),
    ttlMs: options.ttlMs ?? 1_000,
    timeoutMs: options.timeoutMs ?? 500,
    closing: closing.signal,
    clock,
  });
  return { clock, closing, runs, detection };
}

/** Lets every settled promise's callbacks run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ServerDetection', () => {
  it('runs one detection for every caller meanwhile, then trusts it for ttlMs', async () => {
    const { clock, runs, detection } = setup({ ttlMs: 1_000 });
    const never = new AbortController().signal;
    const first = detection.profile(never);
    const second = detection.profile(never);
    expect(runs).toHaveLength(1);
    runs[0]?.resolve(PROFILE);
    await expect(Promise.all([first, second])).resolves.toEqual([PROFILE, PROFILE]);
    expect(clock.pending).toBe(0); // the detection's deadline is disarmed once it settled

    clock.advance(999);
    expect(detection.cached()).toBe(PROFILE);
    await expect(detection.profile(never)).resolves.toBe(PROFILE);
    expect(runs).toHaveLength(1);

    clock.advance(1);
    expect(detection.cached()).toBeUndefined();
    void detection.profile(never);
    expect(runs).toHaveLength(2);
  });

  it('never reuses a profile with a ttl of 0', async () => {
    const { runs, detection } = setup({ ttlMs: 0 });
    const done = detection.profile(new AbortController().signal);
    runs[0]?.resolve(PROFILE);
    await done;
    expect(detection.cached()).toBeUndefined();
  });

  it('aborts a detection at its deadline, on the injected clock', () => {
    const { clock, runs, detection } = setup({ timeoutMs: 500 });
    void detection.profile(new AbortController().signal).catch(() => undefined);
    clock.advance(499);
    expect(runs[0]?.signal.aborted).toBe(false);
    clock.advance(1);
    expect(runs[0]?.signal.aborted).toBe(true);
    expect(runs[0]?.signal.reason).toBe('timeout');
  });

  it('aborts a detection when the handle closes', () => {
    const { closing, runs, detection } = setup();
    void detection.profile(new AbortController().signal).catch(() => undefined);
    closing.abort('closed');
    expect(runs[0]?.signal.reason).toBe('closed');
  });

  it('lets a caller that gives up leave at once; the last one out aborts and forgets the detection', async () => {
    const { runs, detection } = setup();
    const a = new AbortController();
    const b = new AbortController();
    const first = detection.profile(a.signal);
    const second = detection.profile(b.signal);
    a.abort();
    await expect(first).rejects.toThrow('aborted while detecting the server');
    expect(runs[0]?.signal.aborted).toBe(false); // the second caller still waits

    b.abort();
    await expect(second).rejects.toThrow('aborted while detecting the server');
    expect(runs[0]?.signal.reason).toBe('abandoned');

    // The next caller starts a detection of its own instead of joining the dead one.
    const third = detection.profile(new AbortController().signal);
    expect(runs).toHaveLength(2);
    runs[1]?.resolve(PROFILE);
    await expect(third).resolves.toBe(PROFILE);
  });

  it('refuses a caller whose signal already aborted, starting nothing', async () => {
    const { runs, detection } = setup();
    await expect(detection.profile(AbortSignal.abort())).rejects.toThrow('aborted');
    expect(runs).toHaveLength(0);
  });

  it('keeps a profile that arrives after every caller left', async () => {
    const { runs, detection } = setup();
    const gaveUp = new AbortController();
    const waiting = detection.profile(gaveUp.signal).catch(() => undefined);
    gaveUp.abort();
    await waiting;
    runs[0]?.resolve(PROFILE);
    await settle();
    expect(detection.cached()).toBe(PROFILE);
  });

  it('hands a failed detection to every caller, and detects again next time', async () => {
    const { clock, runs, detection } = setup();
    const never = new AbortController().signal;
    const first = detection.profile(never);
    const second = detection.profile(never);
    const refused = new ClickHouseError('AUTH_FAILED', 'wrong password');
    runs[0]?.reject(refused);
    await expect(first).rejects.toBe(refused);
    await expect(second).rejects.toBe(refused);
    expect(clock.pending).toBe(0);
    void detection.profile(never);
    expect(runs).toHaveLength(2);
  });

  it.each<[string, ClickHouseError, boolean]>([
    ['AUTH_FAILED', new ClickHouseError('AUTH_FAILED', 'x', { serverCode: 516 }), true],
    [
      'a READONLY refusal of a setting',
      new ClickHouseError('READONLY', 'Cannot override setting (readonly) in readonly mode', {
        serverCode: 164,
      }),
      true,
    ],
    [
      'a READONLY refusal of a write',
      new ClickHouseError('READONLY', 'Cannot execute query in readonly mode', {
        serverCode: 164,
      }),
      false,
    ],
    [
      'the client-side READONLY for settings of a readonly=1 user',
      new ClickHouseError('READONLY', 'readonly=1 refuses every per-query setting'),
      false,
    ],
    ['a syntax error', new ClickHouseError('SYNTAX_ERROR', 'x', { serverCode: 62 }), false],
  ])('after %s, forgets the profile: %s', async (_what, error, forgets) => {
    const { runs, detection } = setup();
    const done = detection.profile(new AbortController().signal);
    runs[0]?.resolve(PROFILE);
    await done;
    detection.forgetAfter(error);
    expect(detection.cached()).toBe(forgets ? undefined : PROFILE);
  });
});

describe('logDetection', () => {
  it('logs what was detected, with the server and user of a handle that built its client', () => {
    const { lines, logger } = logCapture();
    logDetection(
      { logger, name: 'reports', target: { url: 'http://h:8123', user: 'u' }, compression: false },
      { ...PROFILE, readonly: 0, binding: 'server', version: '26.7.1' },
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'info',
      msg: 'clickhouse: detected the server and user',
      clickhouse: 'reports',
      server_version: '26.7.1',
      user_readonly: 0,
      parameter_binding: 'server',
      url: 'http://h:8123',
      user: 'u',
    });
  });

  it('warns about what a readonly=1 user cannot have: exact JSON and compression', () => {
    const { lines, logger } = logCapture();
    logDetection(
      { logger, name: 'x', target: undefined, compression: true },
      { ...PROFILE, exactJson: { output_format_json_quote_64bit_integers: 1 } },
    );
    expect(lines.map((line) => [line.level, line.msg])).toEqual([
      ['info', 'clickhouse: detected the server and user'],
      [
        'warn',
        expect.stringContaining('cannot ask for quoted 64-bit integers and decimals per query'),
      ],
      ['warn', expect.stringContaining('compression stays off')],
    ]);
    expect(lines[0]).not.toHaveProperty('url');
    expect(lines[1]).toMatchObject({ settings: ['output_format_json_quote_64bit_integers'] });
  });

  it('does not warn a readonly=2 user', () => {
    const { lines, logger } = logCapture();
    logDetection(
      { logger, name: 'x', target: undefined, compression: true },
      { ...PROFILE, readonly: 2, exactJson: { output_format_json_quote_decimals: 1 } },
    );
    expect(lines.map((line) => line.level)).toEqual(['info']);
  });
});
