import { describe, expect, it } from 'vitest';
import { commandNameOf, NOT_READ_NAMES, READ_COMMANDS } from './commands.js';

describe('command lists', () => {
  it('never call a name both a read and a non-read', () => {
    for (const name of READ_COMMANDS) expect(NOT_READ_NAMES.has(name), name).toBe(false);
  });

  it('list the writes an app could reach for, and leave KEYS and XREAD out of call()', () => {
    for (const name of [
      'set',
      'del',
      'unlink',
      'hset',
      'xadd',
      'flushall',
      'eval',
      'publish',
      'sendCommand',
      'pipeline',
      'multi',
    ]) {
      expect(NOT_READ_NAMES.has(name), name).toBe(true);
    }
    expect(READ_COMMANDS.has('keys')).toBe(false);
    expect(READ_COMMANDS.has('xread')).toBe(false);
    expect(READ_COMMANDS.has('get')).toBe(true);
  });

  it('map ioredis Buffer twins to the command', () => {
    expect(commandNameOf('setBuffer')).toBe('set');
    expect(commandNameOf('get')).toBe('get');
  });
});
