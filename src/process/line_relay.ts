// A child's output stream read as lines, each handed on whole: for the supervisors that put
// what their children print into their own log, marked with the child.

/** A line longer than this is handed on in pieces: what a child prints is not ours to hoard. */
const MAX_LINE = 16 * 1024;

/**
 * Reads `stream` as UTF-8 lines and calls `onLine` for each (without its newline), the last
 * one even when it has none; a line past MAX_LINE comes in pieces of that size. Resolves when
 * the stream ends, or `drainMs` after `ended` resolves (when given): a process the child
 * started can hold the stream open after the child is gone.
 */
export async function relayLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
  ended?: Promise<unknown>,
  drainMs = 0,
): Promise<void> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  ended?.then(() => {
    timer = setTimeout(() => reader.cancel().catch(() => {}), drainMs);
  });
  let pending = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += value;
      let from = 0;
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n", from)) {
        onLine(pending.slice(from, nl));
        from = nl + 1;
      }
      pending = pending.slice(from);
      while (pending.length > MAX_LINE) {
        onLine(pending.slice(0, MAX_LINE));
        pending = pending.slice(MAX_LINE);
      }
    }
  } catch {
    // Cancelled after the drain time: the rest is lost with whoever held the stream.
  } finally {
    clearTimeout(timer);
  }
  if (pending !== "") onLine(pending);
}
