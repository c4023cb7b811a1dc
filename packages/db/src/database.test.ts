import { describe, expect, it } from 'vitest';
import { createMetrics } from '@flowforge/observability';
import { createDatabase } from './database.js';

// node-postgres connects lazily: none of these handles ever opens a connection.
const url = 'postgres://nobody@127.0.0.1:1/none';

describe('createDatabase', () => {
  it('refuses to start with nothing to connect to, naming DATABASE_URL', () => {
    expect(() => createDatabase({})).toThrowError(/set DATABASE_URL/);
    expect(() => createDatabase({})).toThrowError(
      expect.objectContaining({ code: 'NOT_CONFIGURED' }),
    );
    expect(() => createDatabase({ url: null, embedded: false })).toThrowError(
      expect.objectContaining({ code: 'NOT_CONFIGURED' }),
    );
  });

  it('refuses an app role that would need quoting or is a keyword', () => {
    for (const appRole of ['Robert"; drop', 'none']) {
      expect(() => createDatabase({ url, appRole })).toThrowError(
        expect.objectContaining({ code: 'INVALID_OPTIONS' }),
      );
    }
  });

  it('refuses a second live handle with the same name on one metrics registry', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const first = createDatabase({ url, metrics });
    expect(() => createDatabase({ url, metrics })).toThrowError(/a handle named "main" already/);
    const other = createDatabase({ url, metrics, name: 'audit' });
    await first.close();
    // Once closed, the name is free again.
    const again = createDatabase({ url, metrics });
    await Promise.all([other.close(), again.close()]);
  });
});
