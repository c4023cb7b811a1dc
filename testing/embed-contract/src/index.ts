/**
 * The Embed HTTP contract as one vitest suite that every app serving
 * `GET /embed/v1/widgets/:id/data` runs (`describeEmbedContract`), the fixture
 * it seeds through the packages' public API (`createEmbedFixture`), and the
 * probes a shutdown-under-load test needs. A test fixture: only tests depend on it.
 * @packageDocumentation
 */
export { describeEmbedContract } from './contract.js';
export type { EmbedAppUnderTest, EmbedStores, StartEmbedApp } from './contract.js';
export { createEmbedFixture } from './fixture.js';
export type { EmbedFixture, EmbedKeys, EmbedWidgets } from './fixture.js';
export { dayBefore } from './clickhouse.js';
export { freePort, holdRequest, probeReadiness } from './http.js';
export type { HeldRequest } from './http.js';
export { startKeepAliveLoad, startReadinessProbers, startServiceProcess, until } from './load.js';
export type { KeepAliveLoad, LoadRequest, ReadinessProbers, ServiceProcess } from './load.js';
