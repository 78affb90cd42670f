/** Time limits shared by the qemu driver's waits. Internal. */

export interface DeadlineOptions {
  signal?: AbortSignal;
  timeoutMs: number;
}

/**
 * Settles like `promise`, or rejects with the signal's reason on abort, or
 * with a TimeoutError DOMException "Cannot <what>: timed out after N ms".
 */
export function deadline<T>(
  promise: Promise<T>,
  { signal, timeoutMs }: DeadlineOptions,
  what: string,
): Promise<T> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      reject(
        new DOMException(
          `Cannot ${what}: timed out after ${timeoutMs} ms`,
          "TimeoutError",
        ),
      );
    }, timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/** Resolves after `ms`, or rejects with the signal's reason on abort. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
