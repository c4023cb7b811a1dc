/** What {@link NamedHandles} keeps per name: whether a live handle holds it. */
export interface HandleState {
  /** True while a handle that has not been closed reports under this name. */
  live: boolean;
}

/** What {@link NamedHandles} needs from the package. */
export interface NamedHandlesOptions<Registry extends object, State extends HandleState> {
  /**
   * Called once per registry, with the map of every name's state reporting to
   * it (closed handles' states stay: their counters keep counting up).
   */
  readonly declare: (registry: Registry, states: ReadonlyMap<string, State>) => void;
  /** The package's error for a name that a live handle already holds. */
  readonly refuse: (message: string) => Error;
}

/**
 * The handles that report metrics to each registry, by name: a name is held
 * by one live handle at a time (two would add up in one series), and a name
 * released by `close()` can be taken again, continuing its counters.
 *
 * @example
 * ```ts
 * import { NamedHandles } from '@flowforge/kernel';
 *
 * const handles = new NamedHandles<object, { live: boolean; calls: number }>({
 *   declare: () => {}, // register the collectors on the registry here
 *   refuse: (message) => new Error(message),
 * });
 * const registry = {};
 * const a = handles.claim(registry, 'primary', () => ({ live: false, calls: 0 }));
 * a.calls += 1;
 * handles.release(a);
 * const b = handles.claim(registry, 'primary', () => ({ live: false, calls: 0 }));
 * console.log(b.calls); // 1
 * ```
 */
export class NamedHandles<Registry extends object, State extends HandleState> {
  readonly #registries = new WeakMap<Registry, Map<string, State>>();
  readonly #options: NamedHandlesOptions<Registry, State>;

  /** @param options - how to declare the metrics on a new registry, and the package's error */
  constructor(options: NamedHandlesOptions<Registry, State>) {
    this.#options = options;
  }

  /**
   * The state of `name` on `registry`, marked live; `create` makes it the
   * first time the name is used there.
   * @throws the package's error (from `refuse`) when a live handle holds the name
   */
  claim(registry: Registry, name: string, create: () => State): State {
    let states = this.#registries.get(registry);
    if (states === undefined) {
      states = new Map();
      this.#registries.set(registry, states);
      this.#options.declare(registry, states);
    }
    let state = states.get(name);
    if (state?.live === true) {
      throw this.#options.refuse(
        `a handle named ${JSON.stringify(name)} already reports to this metrics registry: give each handle its own \`name\``,
      );
    }
    if (state === undefined) {
      state = create();
      states.set(name, state);
    }
    state.live = true;
    return state;
  }

  /** Frees the name of a closed handle; its state keeps its counts. */
  release(state: State): void {
    state.live = false;
  }
}
