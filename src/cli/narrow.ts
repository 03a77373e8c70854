// Permission flags after APP without --isolate request (docs/isolation.md, "Permission flags
// without isolation"): the single process starts itself again (execv, the same PID) with the
// user's grants and those of its own set-up, and gives the set-up's back before it imports the
// app. A compiled program, or one that cannot read its own command line, runs with the
// permissions it has, and the log says so.

import { NARROWED_ENV, narrowedRunFlags, type SetUpGrants } from "../process/least_privilege.ts";
import type { PermissionFlag } from "../process/permission_set.ts";
import { replaceProcess } from "../process/reexec.ts";
import { ownCommandLine, splitRunCommand } from "../process/runtime_flags.ts";

/** Replaces this process with its narrowed self; returns only when it cannot, saying why. */
export function narrowThisProcess(grants: SetUpGrants, user: readonly PermissionFlag[]): string {
  if (Deno.build.standalone) return "a compiled program keeps the permissions it was built with";
  const argv = ownCommandLine();
  const split = argv === null ? null : splitRunCommand(argv);
  if (argv === null || split === null) return "this process's command line cannot be read";
  Deno.env.set(NARROWED_ENV, JSON.stringify({ ...grants, pid: Deno.pid }));
  const failed = replaceProcess([
    argv[0],
    "run",
    ...narrowedRunFlags(split.flags, grants, user),
    ...split.rest,
  ]);
  Deno.env.delete(NARROWED_ENV);
  return failed;
}
