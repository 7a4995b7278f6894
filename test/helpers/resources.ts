/**
 * Everything a test opens registers its cleanup here; `cleanup()` (every test file's
 * afterEach) runs them newest first, so clients close before the servers they talk to.
 */
const stack: (() => unknown)[] = [];

export function defer(fn: () => unknown): void {
  stack.push(fn);
}

export async function cleanup(): Promise<void> {
  const errors: unknown[] = [];
  while (stack.length > 0) {
    const fn = stack.pop();
    try {
      await fn?.();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

/** Promise.withResolvers for Node 20. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
