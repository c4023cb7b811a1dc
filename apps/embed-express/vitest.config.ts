import type { ViteUserConfig } from 'vitest/config';
import { packageTest } from '../../vitest.shared.js';

const config: ViteUserConfig = packageTest('@flowforge/embed-express');
export default config;
