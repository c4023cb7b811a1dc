import type { WidgetsDB } from '@flowforge/widgets';

/** The sample app's tables: FlowForge's data model (@flowforge/widgets, with auth's api_keys). */
export type AppDB = WidgetsDB;
