// A child in a session and process group of its own, so that it and what it starts are
// signalled as one (process_group.ts), and a Ctrl-C at the parent's terminal does not reach
// it. Deno.Command's `detached` does that, but by forking the whole parent and running setsid
// before exec, where a plain spawn uses vfork: with a parent of a hundred megabytes that is
// about 2 ms more per child, on the parent's main thread. util-linux's `setsid`, put before the
// command, does it in the child instead (a child that is no group leader keeps its PID).

import { findUtilLinux } from "./util_linux.ts";

/** The words to put before a command (setsid), or null: then spawn it with `detached`. */
export function ownSessionPrefix(dirs?: readonly string[]): string[] | null {
  const found = findUtilLinux("setsid", [2, 0], dirs);
  return "path" in found ? [found.path] : null;
}

/**
 * Whether this process has a controlling terminal, whose keys (Ctrl-C, Ctrl-\) and hang-up
 * would signal its children too; true when that cannot be told.
 */
export function hasControllingTerminal(): boolean {
  try {
    // pid (comm) state ppid pgrp session tty_nr …: the command may hold spaces and parentheses.
    const stat = Deno.readTextFileSync("/proc/self/stat");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[4] !== "0";
  } catch {
    return true;
  }
}
