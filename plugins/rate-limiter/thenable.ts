/** Whether a value that may or may not be a promise is one (sync fast paths skip the await). */
export function isThenable<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
