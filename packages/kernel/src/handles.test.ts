import { describe, expect, it } from 'vitest';
import { NamedHandles } from './handles.js';

interface State {
  live: boolean;
  calls: number;
}

const create = (): State => ({ live: false, calls: 0 });

describe('NamedHandles', () => {
  it('declares once per registry, refuses a live name, and continues a released one', () => {
    const declared: object[] = [];
    const handles = new NamedHandles<object, State>({
      declare: (registry) => declared.push(registry),
      refuse: (message) => new RangeError(message),
    });
    const one = {};
    const two = {};
    const a = handles.claim(one, 'primary', create);
    a.calls = 3;
    expect(() => handles.claim(one, 'primary', create)).toThrow(
      new RangeError(
        'a handle named "primary" already reports to this metrics registry: give each handle its own `name`',
      ),
    );
    expect(handles.claim(two, 'primary', create).calls).toBe(0);
    handles.claim(one, 'replica', create);
    expect(declared).toEqual([one, two]);
    handles.release(a);
    const again = handles.claim(one, 'primary', create);
    expect(again).toBe(a);
    expect(again.calls).toBe(3);
    expect(again.live).toBe(true);
  });

  it('hands declare the live map of states', () => {
    let seen: ReadonlyMap<string, State> | undefined;
    const handles = new NamedHandles<object, State>({
      declare: (_registry, states) => (seen = states),
      refuse: (message) => new Error(message),
    });
    const registry = {};
    const state = handles.claim(registry, 'x', create);
    expect([...(seen ?? new Map<string, State>())]).toEqual([['x', state]]);
  });
});
