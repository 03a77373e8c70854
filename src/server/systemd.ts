// systemd socket activation (sd_listen_fds(3)): a service started by a .socket unit is handed
// its listening sockets as descriptors 3, 4, … with LISTEN_PID (its own PID), LISTEN_FDS (how
// many) and LISTEN_FDNAMES (their names, colon-separated) in its environment.

/** The first descriptor systemd passes. */
const LISTEN_FDS_START = 3;

/** The sockets systemd passed, in order, and their names ("" where none was given). */
export interface Activation {
  fds: number[];
  names: string[];
}

/**
 * The sockets systemd passed to this process, or null when it passed none (or they were meant
 * for another process). The variables are removed either way, as sd_listen_fds(1) does, so
 * that a process the app starts does not take the sockets for its own.
 */
export function takeSystemdSockets(): Activation | null {
  let pid: string | undefined;
  let count: string | undefined;
  let names: string | undefined;
  try {
    pid = Deno.env.get("LISTEN_PID");
    count = Deno.env.get("LISTEN_FDS");
    names = Deno.env.get("LISTEN_FDNAMES");
    for (const name of ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]) Deno.env.delete(name);
  } catch {
    return null; // No permission to read the environment: nothing was passed that we can see.
  }
  if (pid === undefined || count === undefined || Number(pid) !== Deno.pid) return null;
  const n = /^\d{1,4}$/.test(count) ? Number(count) : 0;
  if (n === 0) return null;
  const fds = Array.from({ length: n }, (_, i) => LISTEN_FDS_START + i);
  const given = names?.split(":") ?? [];
  return { fds, names: fds.map((_, i) => given[i] ?? "") };
}

/** Whether systemd passed sockets to this process (takeSystemdSockets() will find them). */
export function socketsPassed(): boolean {
  try {
    const pid = Deno.env.get("LISTEN_PID");
    return pid !== undefined && Number(pid) === Deno.pid && Number(Deno.env.get("LISTEN_FDS")) > 0;
  } catch {
    return false;
  }
}
