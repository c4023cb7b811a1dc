import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import {
  bindRequestContext,
  getRequestContext,
  getRequestValue,
  runWithRequestContext,
  setRequestValue,
} from './context.js';

describe('request context', () => {
  it('is undefined outside a request, and binding there is refused', () => {
    expect(getRequestContext()).toBeUndefined();
    expect(bindRequestContext({ tenant_id: 't' })).toBe(false);
  });

  it('never leaks between concurrent requests with interleaved awaits, timers and bindings', async () => {
    const seen: string[] = [];
    const request = (id: number) =>
      runWithRequestContext({ request_id: `r${id}` }, async () => {
        await sleep((id * 7) % 5);
        bindRequestContext({ tenant_id: `t${id}`, user_id: `u${id}` });
        await new Promise<void>((resolve) => setTimeout(resolve, (id * 3) % 4));
        await Promise.resolve();
        setImmediate(() => undefined);
        const context = getRequestContext();
        seen.push(`${context?.request_id}/${context?.tenant_id}/${context?.user_id}`);
        return context;
      });

    const contexts = await Promise.all(Array.from({ length: 200 }, (_, id) => request(id)));
    contexts.forEach((context, id) => {
      expect(context).toEqual({ request_id: `r${id}`, tenant_id: `t${id}`, user_id: `u${id}` });
    });
    expect(new Set(seen).size).toBe(200);
    for (const entry of seen) {
      const [request, tenant, user] = entry.split('/');
      expect(tenant?.slice(1)).toBe(request?.slice(1));
      expect(user?.slice(1)).toBe(request?.slice(1));
    }
    expect(getRequestContext()).toBeUndefined();
  });

  it('follows callbacks scheduled inside the request (timers, event emitters)', async () => {
    const fromTimer = await runWithRequestContext(
      { request_id: 'timer' },
      () =>
        new Promise<string | undefined>((resolve) =>
          setTimeout(() => resolve(getRequestContext()?.request_id), 1),
        ),
    );
    expect(fromTimer).toBe('timer');
  });
});

describe('request values', () => {
  const KEY = Symbol('test');

  it('keeps a value for the rest of the request, apart per request, never outside one', async () => {
    expect(setRequestValue(KEY, 'outside')).toBe(false);
    expect(getRequestValue(KEY)).toBeUndefined();
    const seen = await Promise.all(
      ['a', 'b'].map((id) =>
        runWithRequestContext({ request_id: id }, async () => {
          expect(setRequestValue(KEY, { id })).toBe(true);
          await new Promise((resolve) => setTimeout(resolve, 5));
          return getRequestValue(KEY);
        }),
      ),
    );
    expect(seen).toEqual([{ id: 'a' }, { id: 'b' }]);
  });

  it('is not part of the context that log lines carry', () => {
    runWithRequestContext({ request_id: 'r' }, () => {
      setRequestValue(KEY, 'secret-principal');
      expect(JSON.stringify(getRequestContext())).toBe('{"request_id":"r"}');
    });
  });
});
