// Kills the process groups of a master's children when the master dies, even by SIGKILL, when
// nothing of the master's can run. A child dies with its master by its parent-death signal, but
// what the child started does not (the kernel clears that signal on fork), and is re-parented to
// PID 1. So one small shell per master holds the list of live groups on its stdin; when the
// master dies the kernel closes the pipe's other end, the shell reads end of file and kills
// every group still listed. A process that leaves its group (setsid) escapes; see
// docs/isolation.md.

/** The shell's program: `+ ID` lists a group, `- ID` forgets it; at end of file, kill the rest. */
const GUARD_SCRIPT = `trap '' INT TERM HUP QUIT
groups=' '
while read -r op id; do
  case "$op" in
    +) groups="$groups$id " ;;
    -) case "$groups" in *" $id "*) groups="\${groups%% $id *} \${groups#* $id }" ;; esac ;;
  esac
done
for id in $groups; do kill -9 "-$id" 2>/dev/null; done
`;

const SHELL = "/bin/sh";

export interface GroupGuard {
  /** Lists the group whose ID is `pgid` (a child's PID, when it leads its own group). */
  add(pgid: number): void;
  /** Forgets the group; call it once the group was killed or is known empty. */
  remove(pgid: number): void;
  /** Stops the guard; the groups still listed are killed, as if the master had died. */
  close(): Promise<void>;
  /** The guard's own PID (for tests and the log). */
  readonly pid: number;
}

/** Starts the guard, or says why it cannot be had here (one line for the log). */
export function startGroupGuard(shell = SHELL): GroupGuard | { missing: string } {
  let process: Deno.ChildProcess;
  try {
    process = new Deno.Command(shell, {
      args: ["-c", GUARD_SCRIPT],
      stdin: "piped",
      stdout: "null",
      stderr: "null",
      clearEnv: true,
    }).spawn();
  } catch (error) {
    return { missing: `${shell} cannot be started (${errorText(error)})` };
  }
  // The guard must not keep the master's event loop alive, nor outlive a master that exits.
  process.unref();
  const writer = process.stdin.getWriter();
  const encoder = new TextEncoder();
  let open = true;
  const send = (line: string) => {
    if (!open) return;
    writer.write(encoder.encode(line)).catch(() => open = false);
  };
  return {
    pid: process.pid,
    add: (pgid) => send(`+ ${pgid}\n`),
    remove: (pgid) => send(`- ${pgid}\n`),
    async close() {
      if (!open) return;
      open = false;
      // Waited for now: an unref'd process would not keep the loop alive until it exits.
      process.ref();
      await writer.close().catch(() => {});
      await process.status;
    },
  };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
