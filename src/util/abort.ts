/**
 * The reason to abort with when nobody threw anything: what AbortController.abort() makes by itself
 * (an AbortError DOMException, same name, message and code), made once and without a stack trace.
 * abort() makes a new one, capturing the stack, on every call: several microseconds, on paths that
 * abort once per request. There is no caller worth pointing at anyway: a request ended or its client
 * left.
 */
export const ABORTED: DOMException = (() => {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new DOMException('This operation was aborted', 'AbortError');
  } finally {
    Error.stackTraceLimit = limit;
  }
})();
