// Whether a process still exists, for cleaning up after one that was killed before it could
// clean up itself (its files and cgroups are named by its PID).

/** True while `pid` exists (a zombie included); on Linux, from /proc. */
export function isAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}
