import type { Command } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Deadlines } from './core.js';

/** The part of an ioredis Command the sweep uses. */
function fakeCommand(): Command & { rejected: Error[] } {
  const command = {
    isSettled: false,
    rejected: [] as Error[],
    reject(error: Error) {
      command.rejected.push(error);
      command.isSettled = true;
    },
  };
  return command as unknown as Command & { rejected: Error[] };
}

describe('Deadlines', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('rejects a command with "Command timed out" between timeoutMs and timeoutMs + interval', () => {
    const deadlines = new Deadlines(800); // sweeps every 100 ms
    vi.advanceTimersByTime(30);
    const command = fakeCommand();
    deadlines.track(command);
    vi.advanceTimersByTime(799);
    expect(command.rejected).toEqual([]);
    vi.advanceTimersByTime(101);
    expect(command.rejected.map((error) => error.message)).toEqual(['Command timed out']);
  });

  it('leaves settled commands alone and keeps no timer once nothing is in flight', () => {
    const deadlines = new Deadlines(200);
    const answered = fakeCommand();
    const late = fakeCommand();
    deadlines.track(answered);
    deadlines.track(late);
    answered.isSettled = true;
    vi.advanceTimersByTime(300);
    expect(answered.rejected).toEqual([]);
    expect(late.rejected).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
    // Tracking again starts the sweep again.
    const next = fakeCommand();
    deadlines.track(next);
    expect(vi.getTimerCount()).toBe(1);
    deadlines.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('expires in send order and stops at the first command still within its time', () => {
    const deadlines = new Deadlines(400); // sweeps every 50 ms
    const first = fakeCommand();
    deadlines.track(first);
    vi.advanceTimersByTime(200);
    const second = fakeCommand();
    deadlines.track(second);
    vi.advanceTimersByTime(260);
    expect(first.rejected).toHaveLength(1);
    expect(second.rejected).toHaveLength(0);
    vi.advanceTimersByTime(200);
    expect(second.rejected).toHaveLength(1);
  });

  it('keeps its queue short under a steady stream of answered commands', () => {
    const deadlines = new Deadlines(1_000);
    for (let index = 0; index < 10_000; index += 1) {
      const command = fakeCommand();
      deadlines.track(command);
      command.isSettled = true;
    }
    vi.advanceTimersByTime(2_000);
    expect(vi.getTimerCount()).toBe(0);
  });
});
