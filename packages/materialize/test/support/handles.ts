import { createMaterialize, type Materialize, type MaterializeOptions } from '../../src/index.js';

/** Handles a test opens, closed after it (so a failing test leaks nothing into the next). */
export class Handles {
  readonly #open = new Set<Materialize>();

  open(options: MaterializeOptions): Materialize {
    const handle = createMaterialize({
      connectTimeoutMs: 2000,
      reconnect: { initialDelayMs: 5, maxDelayMs: 50 },
      ...options,
    });
    this.#open.add(handle);
    return handle;
  }

  async closeAll(): Promise<void> {
    const handles = [...this.#open];
    this.#open.clear();
    await Promise.all(handles.map((handle) => handle.close()));
  }
}

let counter = 0;
/** A view name no other test (or earlier run against a real server) uses. */
export function uniqueName(base: string): string {
  counter += 1;
  return `${base}_${process.pid}_${Date.now().toString(36)}_${counter}`;
}
