// Test support for tests that run tsgi as a real child process: running a command to its end,
// starting a server and reading its "Listening on" line, polling with a deadline, and looking
// at processes through /proc (children, zombies, descriptors).

const decoder = new TextDecoder();

/** The output of a command run to its end. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `command args` to its end with no input; returns its status and output. */
export async function run(command: string, args: string[], cwd?: string): Promise<Ran> {
  const output = await new Deno.Command(command, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Polls `check` every 20 ms; throws naming `what` when `deadlineMs` (20 s) passes first. */
export async function waitUntil(
  what: string,
  check: () => boolean,
  deadlineMs = 20_000,
): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A server started as a child process. */
export interface Spawned {
  child: Deno.ChildProcess;
  /** The port of the first "Listening on http://…" line. */
  port: number;
  /** Its stderr so far. */
  log(): string;
  /** Resolves with the whole stderr once every process holding it has exited. */
  logDone: Promise<string>;
}

/**
 * Starts `command args` with stderr piped and waits (up to `deadlineMs`) for its first
 * "Listening on http://HOST:PORT" line; throws with the log if it exits first.
 */
export async function spawnServer(
  command: string,
  args: string[],
  options: { cwd?: string; stdout?: "null" | "piped"; deadlineMs?: number } = {},
): Promise<Spawned & { stdout: () => string }> {
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    stdin: "null",
    stdout: options.stdout ?? "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const logDone = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) text += chunk;
    return text;
  })();
  let out = "";
  if (options.stdout === "piped") {
    (async () => {
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) out += chunk;
    })();
  }
  let exited = false;
  child.status.then(() => (exited = true));
  const listening = /Listening on http:\/\/\S+:(\d+)/;
  await waitUntil(
    "the server listens",
    () => exited || listening.test(text),
    options.deadlineMs ?? 15_000,
  );
  if (exited) throw new Error(`The server exited before listening:\n${text}`);
  const port = Number(listening.exec(text)![1]);
  return { child, port, log: () => text, logDone, stdout: () => out };
}

/** SIGTERM (if still running), then the exit status once its log is complete. */
export async function stopServer(server: Spawned): Promise<Deno.CommandStatus> {
  try {
    server.child.kill("SIGTERM");
  } catch {
    // Exited already.
  }
  const status = await server.child.status;
  await server.logDone;
  return status;
}

/** A process as /proc/PID/stat shows it. */
export interface Proc {
  pid: number;
  ppid: number;
  /** R, S, D, Z, … as in proc(5). */
  state: string;
}

/** /proc/PID/stat, or null when the process is gone. */
export function procStat(pid: number): Proc | null {
  let text;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { pid, state: fields[0], ppid: Number(fields[1]) };
}

/** Every process whose parent is `pid`, zombies included: a scan of /proc/N/stat. */
export function childrenOf(pid: number): Proc[] {
  const out: Proc[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = procStat(Number(entry.name));
    if (stat !== null && stat.ppid === pid) out.push(stat);
  }
  return out;
}

/** How many descriptors `pid` holds open. */
export function fdCount(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

/** A process that is gone, or has exited and waits for a parent to reap it. */
export function exited(pid: number): boolean {
  const stat = procStat(pid);
  return stat === null || stat.state === "Z" || stat.state === "X";
}
