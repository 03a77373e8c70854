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

/**
 * Polls `check` (which may be async) every `intervalMs` (20 ms); throws naming `what` when
 * `deadlineMs` (20 s) passes first.
 */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  deadlineMs = 20_000,
  intervalMs = 20,
): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A child process whose output is read as it comes. */
export interface Logged {
  child: Deno.ChildProcess;
  /** Its stderr so far; with `stdout: "merged"`, its stdout too, as the two arrived. */
  log(): string;
  /** Its stdout so far, with `stdout: "piped"` ("" otherwise). */
  out(): string;
  /** Resolves with the whole log once every process holding its pipes has exited. */
  logDone: Promise<string>;
}

export interface LoggedOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** "null" (the default): discarded; "piped": read into out(); "merged": read into log(). */
  stdout?: "null" | "piped" | "merged";
}

/** Starts `command args` with no input and its stderr (and stdout, if asked) read as it comes. */
export function spawnLogged(command: string, args: string[], options: LoggedOptions = {}): Logged {
  const stdout = options.stdout ?? "null";
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: stdout === "null" ? "null" : "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  let out = "";
  const read = async (stream: ReadableStream<Uint8Array>, into: (chunk: string) => void) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) into(chunk);
  };
  const reading = [read(child.stderr, (chunk) => (text += chunk))];
  if (stdout === "merged") reading.push(read(child.stdout, (chunk) => (text += chunk)));
  if (stdout === "piped") reading.push(read(child.stdout, (chunk) => (out += chunk)));
  const logDone = Promise.all(reading).then(() => text);
  return { child, log: () => text, out: () => out, logDone };
}

/**
 * Waits (up to `deadlineMs`) until `listening` matches the log; throws with the log if the
 * process (the `what`: "server", "master") exits first. Resolves with the match.
 */
export async function waitForListen(
  logged: Pick<Logged, "child" | "log">,
  listening: RegExp,
  what = "server",
  deadlineMs = 20_000,
): Promise<RegExpExecArray> {
  let exited = false;
  logged.child.status.then(() => (exited = true));
  await waitUntil(`the ${what} listens`, () => exited || listening.test(logged.log()), deadlineMs);
  if (exited) throw new Error(`The ${what} exited before listening:\n${logged.log()}`);
  return listening.exec(logged.log())!;
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
  const server = spawnLogged(command, args, { cwd: options.cwd, stdout: options.stdout });
  const listening = /Listening on http:\/\/\S+:(\d+)/;
  const [, port] = await waitForListen(server, listening, "server", options.deadlineMs ?? 15_000);
  return { ...server, port: Number(port), stdout: server.out };
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
  /** The program's name, as the kernel keeps it (at most 15 bytes). */
  comm: string;
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
  const close = text.lastIndexOf(")");
  const fields = text.slice(close + 2).split(" ");
  const comm = text.slice(text.indexOf("(") + 1, close);
  return { pid, state: fields[0], ppid: Number(fields[1]), comm };
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

/** The arguments of `deno run -A main.ts APP FLAGS…`, the way a user starts tsgi. */
export function tsgiArgs(app: string, ...flags: string[]): string[] {
  return ["run", "-A", "main.ts", app, ...flags];
}
