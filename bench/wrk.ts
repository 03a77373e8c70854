// Running wrk and reading its report. The text report is parsed (rather than a Lua `done`
// hook) so that each scenario's Lua script stays a few lines that do one thing.

/** What one wrk run measured. */
export interface WrkResult {
  requests: number;
  seconds: number;
  requestsPerSec: number;
  /** wrk's Transfer/sec (response bytes read, headers included), in MiB/s. */
  readMiBPerSec: number;
  p50Ms: number | null;
  p99Ms: number | null;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  non2xx: number;
}

export interface WrkOptions {
  url: string;
  connections: number;
  durationSec: number;
  script?: string;
  /** CPU to pin wrk to with taskset, or null for no pinning. */
  cpu: number | null;
}

// wrk prints sizes with binary prefixes (format_binary, 1024-based) and times as us/ms/s/m/h.
const SIZE_FACTOR_MIB: Readonly<Record<string, number>> = {
  "B": 1 / (1024 * 1024),
  "KB": 1 / 1024,
  "MB": 1,
  "GB": 1024,
  "TB": 1024 * 1024,
};
const TIME_FACTOR_MS: Readonly<Record<string, number>> = {
  "ms": 1,
  "s": 1000,
  "m": 60_000,
  "h": 3_600_000,
};

/** Converts a wrk time such as "812.00us" or "1.20s" to milliseconds. */
export function parseTimeMs(text: string): number {
  const match = text.trim().match(/^([\d.]+)(us|ms|s|m|h)$/);
  if (!match) throw new Error(`Cannot parse wrk time "${text}": expected a number and us/ms/s/m/h`);
  // Divide for microseconds: 72 * 0.001 is 0.07200000000000001, 72 / 1000 is 0.072.
  return match[2] === "us" ? Number(match[1]) / 1000 : Number(match[1]) * TIME_FACTOR_MS[match[2]];
}

/** Converts a wrk size such as "12.34MB" to MiB. */
export function parseSizeMiB(text: string): number {
  const match = text.trim().match(/^([\d.]+)([KMGT]?B)$/);
  if (!match) throw new Error(`Cannot parse wrk size "${text}": expected a number and B/KB/MB/GB`);
  return Number(match[1]) * SIZE_FACTOR_MIB[match[2]];
}

function percentile(text: string, pct: string): number | null {
  const match = text.match(new RegExp(`^\\s+${pct}%\\s+(\\S+)\\s*$`, "m"));
  return match ? parseTimeMs(match[1]) : null;
}

/** Parses wrk 4.x output (run with --latency for the percentiles). */
export function parseWrkOutput(text: string): WrkResult {
  const total = text.match(/^\s*(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read/m);
  const rps = text.match(/^Requests\/sec:\s+([\d.]+)/m);
  const transfer = text.match(/^Transfer\/sec:\s+(\S+)/m);
  if (!total || !rps || !transfer) {
    throw new Error(`Cannot parse wrk output: no totals in:\n${text.trim()}`);
  }
  const errors = text.match(
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/,
  );
  const non2xx = text.match(/Non-2xx or 3xx responses: (\d+)/);
  return {
    requests: Number(total[1]),
    seconds: parseTimeMs(total[2]) / 1000,
    requestsPerSec: Number(rps[1]),
    readMiBPerSec: parseSizeMiB(transfer[1]),
    p50Ms: percentile(text, "50"),
    p99Ms: percentile(text, "99"),
    socketErrors: {
      connect: Number(errors?.[1] ?? 0),
      read: Number(errors?.[2] ?? 0),
      write: Number(errors?.[3] ?? 0),
      timeout: Number(errors?.[4] ?? 0),
    },
    non2xx: Number(non2xx?.[1] ?? 0),
  };
}

/** The argv of one wrk run, with taskset in front when pinning. */
export function wrkArgv(options: WrkOptions): string[] {
  const argv = [
    "wrk",
    "-t1",
    `-c${options.connections}`,
    `-d${options.durationSec}s`,
    "--latency",
    ...(options.script ? ["-s", options.script] : []),
    options.url,
  ];
  return options.cpu === null ? argv : ["taskset", "-c", String(options.cpu), ...argv];
}

let running: Deno.ChildProcess | null = null;

/** Kills the wrk run in progress, if any; for Ctrl-C. */
export function killWrk(): void {
  try {
    running?.kill("SIGKILL");
  } catch { /* already exited */ }
}

/** Runs wrk to completion (killing it if it overruns by 30 s) and parses its report. */
export async function runWrk(options: WrkOptions): Promise<{ result: WrkResult; output: string }> {
  const [command, ...args] = wrkArgv(options);
  const child = new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).spawn();
  const guard = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
  }, (options.durationSec + 30) * 1000);
  running = child;
  const out = await child.output().finally(() => {
    running = null;
    clearTimeout(guard);
  });
  const output = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`wrk exited with ${out.code}: ${output.trim()}`);
  return { result: parseWrkOutput(output), output };
}

async function commandWorks(command: string, args: string[]): Promise<boolean> {
  try {
    await new Deno.Command(command, { args, stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes sure wrk is on PATH, installing it with apt-get when running as root; otherwise
 * exits with a message saying what to do.
 */
export async function ensureWrk(): Promise<void> {
  // `wrk --version` exits 1 after printing its banner; only a missing binary throws.
  if (await commandWorks("wrk", ["--version"])) return;
  let why = "not running as root, so apt-get was not tried";
  if (Deno.uid() === 0 && await commandWorks("apt-get", ["--version"])) {
    const install = await new Deno.Command("apt-get", {
      args: ["install", "-y", "wrk"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (install.success && await commandWorks("wrk", ["--version"])) return;
    why = `apt-get install -y wrk failed: ${new TextDecoder().decode(install.stderr).trim()}`;
  } else if (Deno.uid() === 0) {
    why = "apt-get is not available";
  }
  console.error(`bench: wrk is not installed and could not be installed: ${why}`);
  Deno.exit(1);
}

/** Whether taskset is available for CPU pinning. */
export function hasTaskset(): Promise<boolean> {
  return commandWorks("taskset", ["--version"]);
}
