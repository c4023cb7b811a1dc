import type { ViteUserConfig } from 'vitest/config';
import { packageTest } from '../../vitest.shared.js';

const config: ViteUserConfig = packageTest('@flowforge/server');
export default config;
