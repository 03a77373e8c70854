// A child that dies with its parent, even when the parent is killed with SIGKILL while the child
// is busy: the kernel's parent-death signal (PR_SET_PDEATHSIG). Only a process can ask it for
// itself, before the program it runs starts; Deno.Command has no hook for that, so the child is
// started through util-linux's `setpriv --pdeathsig`, which asks and then execs the real command
// (the same PID). Where no such setpriv exists, the caller starts its children directly and is
// told why, in one line for its log.

import { findUtilLinux } from "./util_linux.ts";

/** The words to put before a command so that it gets `signal` when its parent dies. */
export type DeathSignal = { prefix: string[] } | { missing: string };

/** The setpriv prefix for `signal`, or why there is none; `dirs`: where to look (see util_linux). */
export function deathSignalPrefix(
  signal: Deno.Signal = "SIGKILL",
  dirs?: readonly string[],
): DeathSignal {
  // util-linux added --pdeathsig to setpriv in 2.33.
  const found = findUtilLinux("setpriv", [2, 33], dirs);
  return "path" in found ? { prefix: [found.path, "--pdeathsig", signal, "--"] } : found;
}
