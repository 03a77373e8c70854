// What holds every child of a pool beyond its permissions, set up once per pool: the words its
// command starts with (setsid: a session of its own; setpriv: death with the master), the
// memory cgroups its children go in, and the guard that kills what they started if the master
// is killed. Each part that cannot be had here is a warning, saying what is weaker for it; the
// pool still runs.
//
// A session is for what a child starts (signalled and killed with it) and against a Ctrl-C at
// the master's terminal. A child that can start no process, of a master with no terminal, needs
// none, and is spared the exec of setsid (about 0.7 ms of its CPU, in every request's cost).

import { type CgroupParent, openMemoryCgroups } from "./memory_cgroup.ts";
import { allowed, type PermissionFlag } from "../process/permission_set.ts";
import { deathSignalPrefix } from "../process/death_signal.ts";
import { hasControllingTerminal, ownSessionPrefix } from "../process/own_session.ts";
import { type GroupGuard, startGroupGuard } from "../process/group_guard.ts";

export interface Containment {
  /** Before the child's command: setsid, then setpriv --pdeathsig SIGKILL, where found. */
  prefix: string[];
  /** Whether the child must get its session from Deno.Command's `detached` (no setsid). */
  detached: boolean;
  /** Where the children's memory cgroups are made; null without a cap or without cgroups. */
  cgroups: CgroupParent | null;
  /** Kills the children's process groups when the master dies; null where it cannot run. */
  guard: GroupGuard | null;
  /** One line for each weaker part, for the log. */
  warnings: string[];
}

export interface ContainmentOptions {
  permissions: readonly PermissionFlag[];
  /** Whether children run with the master's own permissions (not narrowed to these). */
  unnarrowed: boolean;
  /** The memory cap in bytes; 0 for none. */
  memoryBytes: number;
  /** Where to look for setsid and setpriv (default: the usual folders, PATH). */
  utilLinuxDirs?: string[];
}

export function containment(options: ContainmentOptions): Containment {
  const warnings: string[] = [];
  const startsProcesses = options.unnarrowed || mayStartProcesses(options.permissions);
  const session = startsProcesses || hasControllingTerminal()
    ? ownSessionPrefix(options.utilLinuxDirs)
    : [];
  let prefix = session ?? [];
  const death = deathSignalPrefix("SIGKILL", options.utilLinuxDirs);
  if ("prefix" in death) prefix = [...prefix, ...death.prefix];
  else {
    warnings.push(
      `Children are started directly: ${death.missing}; a busy child outlives a master ` +
        "killed with SIGKILL",
    );
  }
  let cgroups: CgroupParent | null = null;
  if (options.memoryBytes > 0) {
    // A child that may start processes may leave some in its cgroup: it is checked after each.
    const opened = openMemoryCgroups(startsProcesses);
    if ("cgroups" in opened) cgroups = opened.cgroups;
    else {
      warnings.push(
        `--isolate-memory ${Math.round(options.memoryBytes / 2 ** 20)} MiB: ${opened.missing}; ` +
          "only the V8 heap is capped (ArrayBuffers and native memory are not)",
      );
    }
  }
  // Only what a child starts can outlive it: a child that can start nothing needs no guard.
  const guard = startsProcesses ? startGroupGuard() : null;
  if (guard !== null && "missing" in guard) {
    warnings.push(
      `No guard for children's process groups: ${guard.missing}; what a child starts ` +
        "outlives a master killed with SIGKILL",
    );
  }
  return {
    prefix,
    detached: session === null,
    cgroups,
    guard: guard === null || "missing" in guard ? null : guard,
    warnings,
  };
}

/** Whether the grants let a child start processes: by running programs, or through libc. */
function mayStartProcesses(permissions: readonly PermissionFlag[]): boolean {
  return (["run", "ffi"] as const).some((kind) => {
    const grant = allowed(permissions, kind);
    return grant === "all" || grant.length > 0;
  });
}
