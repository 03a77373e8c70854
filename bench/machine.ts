// A description of the machine and tool versions, recorded with every set of results.

import type { Machine } from "./summary.ts";

async function firstLine(command: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return text.trim().split("\n")[0]?.trim() || "unknown";
  } catch {
    return "not installed";
  }
}

function cpuModel(): string {
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    return info.match(/^model name\s*:\s*(.+)$/m)?.[1].trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

export async function describeMachine(): Promise<Machine> {
  const wrk = await firstLine("wrk", ["--version"]);
  return {
    nproc: navigator.hardwareConcurrency,
    cpuModel: cpuModel(),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
    node: (await firstLine("node", ["--version"])).replace(/^v/, ""),
    // "wrk debian/4.1.0-3+b2 [epoll] Copyright ..." → "wrk debian/4.1.0-3+b2 [epoll]"
    wrk: wrk.replace(/\s+Copyright.*$/, ""),
  };
}

/** The 1-minute load average, or -1 where /proc/loadavg is missing. */
export function loadAverage(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return -1;
  }
}
