// A child started in a session and process group of its own (Deno.Command's `detached`) is
// stopped as a group, so that what it started stops with it. The group's ID is the child's PID.

/**
 * Sends `signal` to every process in the group led by `pid`; false when there is none left.
 * Safe after the leader was reaped: while any member lives, the kernel keeps the ID in use.
 */
export function signalGroup(pid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}
