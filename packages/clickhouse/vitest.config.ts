import type { ViteUserConfig } from 'vitest/config';
import { packageTest } from '../../vitest.shared.js';

const config: ViteUserConfig = packageTest('@flowforge/clickhouse');
export default config;
