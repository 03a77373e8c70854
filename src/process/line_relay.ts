// A child's output stream read as lines, each handed on whole: for the supervisors that put
// what their children print into their own log, marked with the child.

/**
 * Reads `stream` as UTF-8 lines and calls `onLine` for each (without its newline), the last
 * one even when it has none. Resolves when the stream ends, or `drainMs` after `ended`
 * resolves: a process the child started can hold the stream open after the child is gone.
 */
export async function relayLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
  ended: Promise<unknown>,
  drainMs: number,
): Promise<void> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  ended.then(() => {
    timer = setTimeout(() => reader.cancel().catch(() => {}), drainMs);
  });
  let pending = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += value;
      let nl = pending.indexOf("\n");
      while (nl >= 0) {
        onLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        nl = pending.indexOf("\n");
      }
    }
  } catch {
    // Cancelled after the drain time: the rest is lost with whoever held the stream.
  } finally {
    clearTimeout(timer);
  }
  if (pending !== "") onLine(pending);
}
