/** A minimal typed event emitter that runs in browsers and Node alike. */
export type EventMap = { [event: string]: (...args: never[]) => void };

type Wrapped = { original?: unknown };

export class TypedEmitter<E extends EventMap> {
  readonly #listeners = new Map<keyof E, Set<E[keyof E]>>();

  on<K extends keyof E>(event: K, listener: E[K]): this {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return this;
  }

  /** Removes a listener added with `on` or `once`. */
  off<K extends keyof E>(event: K, listener: E[K]): this {
    const set = this.#listeners.get(event);
    if (!set) return this;
    if (!set.delete(listener)) {
      // A `once` listener is stored wrapped; find its wrapper.
      for (const l of set) {
        if ((l as Wrapped).original === listener) {
          set.delete(l);
          break;
        }
      }
    }
    if (set.size === 0) this.#listeners.delete(event);
    return this;
  }

  once<K extends keyof E>(event: K, listener: E[K]): this {
    const wrapper = ((...args: Parameters<E[K]>) => {
      this.off(event, wrapper);
      (listener as (...a: Parameters<E[K]>) => void)(...args);
    }) as unknown as E[K];
    (wrapper as Wrapped).original = listener;
    return this.on(event, wrapper);
  }

  /** Resolves with the arguments of the next `event`. */
  next<K extends keyof E>(event: K): Promise<Parameters<E[K]>> {
    return new Promise((resolve) => this.once(event, ((...args: Parameters<E[K]>) => resolve(args)) as unknown as E[K]));
  }

  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    const set = this.#listeners.get(event);
    if (set) for (const listener of [...set]) (listener as (...a: Parameters<E[K]>) => void)(...args);
    else if (event === 'error') {
      // An error nobody listens to must not vanish: it goes to the console, once per code
      // (a repeating failure would flood it), and is never thrown (unlike Node's
      // EventEmitter): the caller that emitted it is in the middle of its own work.
      const code = (args[0] as { code?: unknown } | undefined)?.code;
      this.#unheard ??= new Set();
      if (!this.#unheard.has(code)) {
        this.#unheard.add(code);
        console.error(args[0]);
      }
    }
  }

  /** Codes of the errors that went to the console for want of a listener. */
  #unheard?: Set<unknown>;

  removeAllListeners(): void {
    this.#listeners.clear();
  }
}
