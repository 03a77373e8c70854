// Listening on a unix socket (--bind unix:/path): a stale socket file left by a crash is
// replaced, a live one never is; the file gets the mode --umask leaves; it is removed on stop.

/** Refused to take over a socket path: the message says why. */
export class SocketInUseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SocketInUseError";
  }
}

/** Opens the socket at `path` with mode 0666 less `umask`; see clearStaleSocket() first. */
export function listenUnix(path: string, umask: number): Deno.Listener {
  const listener = Deno.listen({ transport: "unix", path });
  Deno.chmodSync(path, 0o666 & ~umask);
  return listener;
}

/**
 * Removes a socket file at `path` only when nobody answers on it (what a crash leaves); throws
 * SocketInUseError for a live socket or a file that is not one.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch {
    return;
  }
  if (!info.isSocket) throw new SocketInUseError(`${path} exists and is not a socket`);
  try {
    const probe = await Deno.connect({ transport: "unix", path });
    probe.close();
  } catch {
    // Nobody listens: what a crash leaves behind.
    Deno.removeSync(path);
    return;
  }
  throw new SocketInUseError(`${path} is in use by another server`);
}

/** Removes the socket file on a clean stop; gone already is fine. */
export function removeSocket(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // Removed by someone else, or never made.
  }
}
