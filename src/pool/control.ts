// What a master and its workers say to each other. The master starts a worker with a few
// environment variables (never a visible flag, so a compiled binary dispatches the same way);
// the worker answers with newline-delimited JSON messages on a unix socket of the master's,
// never on its stdout, which is the app's (so nothing an app prints can pass for a message).

/** The environment a master gives its workers. */
export const WORKER_ENV = {
  /** The worker's number, 1, 2, 3, … in the order the master started them. */
  id: "TSGI_WORKER_ID",
  /** Requests to serve before retiring (--max-requests plus jitter); 0 or absent: no limit. */
  maxRequests: "TSGI_MAX_REQUESTS",
  /** The binds with every port concrete, comma-separated, overriding --bind (SO_REUSEPORT). */
  binds: "TSGI_BINDS",
  /** The master's listening sockets, as inherited descriptors, comma-separated: served. */
  listenFds: "TSGI_LISTEN_FDS",
  /** The path of the master's control socket. */
  control: "TSGI_CONTROL",
} as const;

/** A worker's message to its master, one JSON object per line on the control socket. */
export type ControlMessage =
  /** The first message on a control connection: which worker speaks. */
  | { t: "hello"; id: number }
  /** The app is loaded and the listeners are open: the worker is serving. */
  | { t: "ready" }
  /**
   * Sent every second while the event loop turns; `n` counts the requests served, `rss` is the
   * worker's resident memory in bytes (absent from a worker that does not measure it).
   */
  | { t: "hb"; n: number; rss?: number }
  /** The request budget is spent, or --max-memory passed: replace me (the master then stops
   * this worker). */
  | { t: "retiring" }
  /** Why the worker could not boot, sent before it exits. */
  | { t: "error"; msg: string };

const encoder = new TextEncoder();

/** The bytes of one message, newline included. */
export function encodeMessage(message: ControlMessage): Uint8Array {
  return encoder.encode(JSON.stringify(message) + "\n");
}

/** A line that is a control message, or null for any other line (it is passed through). */
export function parseMessage(line: string): ControlMessage | null {
  if (!line.startsWith('{"t":"')) return null;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (value === null || typeof value !== "object") return null;
  const m = value as Record<string, unknown>;
  switch (m.t) {
    case "ready":
    case "retiring":
      return { t: m.t };
    case "hb":
      if (!isCount(m.n)) return null;
      if (m.rss === undefined) return { t: "hb", n: m.n };
      return isCount(m.rss) ? { t: "hb", n: m.n, rss: m.rss } : null;
    case "hello":
      return typeof m.id === "number" ? { t: "hello", id: m.id } : null;
    case "error":
      return typeof m.msg === "string" ? { t: "error", msg: m.msg } : null;
    default:
      return null;
  }
}

/** A count or a size: a whole number, 0 or more, that a double holds exactly. */
function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
