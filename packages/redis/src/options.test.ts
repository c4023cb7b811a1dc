import { describe, expectTypeOf, it } from 'vitest';
import type { RedisSettings } from '@flowforge/config';
import type { Logger, Metrics } from '@flowforge/observability';
import type { RedisOptions } from './index.js';

describe('RedisOptions', () => {
  it('takes settings.redis of @flowforge/config spread in, with a logger and metrics', () => {
    expectTypeOf<
      RedisSettings & { readonly logger: Logger; readonly metrics: Metrics }
    >().toExtend<RedisOptions>();
  });
});
