// Running out of file descriptors: the soft limit is raised to the hard one at start (and
// without FFI, one log line says why not); a configuration that cannot fit is warned about;
// and a real server whose descriptors are all taken still answers every new connection 503,
// without spinning, and serves again once the connections holding them close.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { run, type Spawned, spawnServer, stopServer } from "../support/process.ts";
import { parseResponses } from "../support/server.ts";

const ROOT = fromFileUrl(new URL("../..", import.meta.url));
const RLIMIT = new URL("../../src/server/rlimit.ts", import.meta.url).href;
const LINUX = Deno.build.os === "linux";

/** Runs a script importing src/server/rlimit.ts as `rlimit` (under `prlimit` when given); its JSON. */
async function probe(permissions: string[], body: string, limit?: string): Promise<unknown> {
  const dir = await Deno.makeTempDir({ prefix: "tsgi-rlimit-" });
  try {
    const script = `${dir}/probe.ts`;
    await Deno.writeTextFile(script, `import * as rlimit from "${RLIMIT}";\n${body}`);
    const deno = [Deno.execPath(), "run", "--no-config", ...permissions, script];
    const ran = limit === undefined
      ? await run(deno[0], deno.slice(1))
      : await run("prlimit", [`--nofile=${limit}`, ...deno]);
    assert.equal(ran.code, 0, ran.stderr);
    return JSON.parse(ran.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// The deno CLI raises the soft limit itself when it starts, so the probe lowers it first.
const LOWER_SOFT_LIMIT = `
  const libc = Deno.dlopen("libc.so.6", {
    getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
    setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  }).symbols;
  const limit = new BigUint64Array(2);
  libc.getrlimit(7, limit);
  const hard = Number(limit[1]);
  limit[0] = 64n;
  if (libc.setrlimit(7, limit) !== 0) throw new Error("cannot lower the soft limit");
  const proc = () => /^Max open files +(\\d+) +(\\d+)/m.exec(Deno.readTextFileSync("/proc/self/limits"))!
    .slice(1).map(Number);
`;

Deno.test({
  name: "raiseFileLimit() lifts the soft open-file limit to the hard one",
  ignore: !LINUX,
  fn: async () => {
    const out = await probe(
      ["-A"],
      LOWER_SOFT_LIMIT + `
      const lowered = proc();
      const outcome = rlimit.raiseFileLimit();
      console.log(JSON.stringify({ hard, lowered, outcome, raised: proc() }));`,
    ) as { hard: number; lowered: number[]; outcome: unknown; raised: number[] };
    const { hard } = out;
    assert.deepEqual(out.lowered, [64, hard]);
    assert.deepEqual(out.outcome, {
      before: { soft: 64, hard },
      after: { soft: hard, hard },
      unraised: "",
    });
    assert.deepEqual(out.raised, [hard, hard], "as /proc/self/limits shows it");
  },
});

Deno.test({
  name: "prepareFileLimit() warns in one line when the admission flags cannot fit",
  ignore: !LINUX,
  fn: async () => {
    const out = await probe(
      ["-A"],
      `const lines: string[] = [];
       const log = { debug: (m: string) => lines.push("DEBUG " + m),
                     warning: (m: string) => lines.push("WARNING " + m) };
       rlimit.prepareFileLimit({ maxConnections: 100, maxPending: 100 }, log);
       const fits = lines.splice(0);
       rlimit.prepareFileLimit({ maxConnections: 1000, maxPending: 1000 }, log);
       console.log(JSON.stringify({ fits, tight: lines }));`,
      "1024:1024",
    ) as { fits: string[]; tight: string[] };
    assert.deepEqual(out.fits, ["DEBUG Open-file limit is 1024 (hard 1024)"]);
    assert.equal(out.tight.length, 2, out.tight.join("\n"));
    assert.match(
      out.tight[1],
      /^WARNING --max-connections 1000 \+ --max-pending 1000 need about 2032 file descriptors, but the open-file limit is 1024; .*LimitNOFILE=/,
    );
  },
});

Deno.test({
  name: "without --allow-ffi the limit is left alone, and one debug line says why",
  ignore: !LINUX,
  fn: async () => {
    const out = await probe(
      ["--allow-read"],
      `const lines: string[] = [];
       const log = { debug: (m: string) => lines.push("DEBUG " + m),
                     warning: (m: string) => lines.push("WARNING " + m) };
       const outcome = rlimit.prepareFileLimit({ maxConnections: 1e6, maxPending: 1e6 }, log);
       console.log(JSON.stringify({ outcome, lines }));`,
    );
    assert.deepEqual(out, {
      outcome: { before: null, after: null, unraised: "no FFI permission (--allow-ffi)" },
      lines: ["DEBUG Open-file limit neither raised nor checked: no FFI permission (--allow-ffi)"],
    });
  },
});

const encoder = new TextEncoder();

/** A connection that sends nothing; it reads what comes and closes at the server's FIN. */
class Holder {
  received = "";
  closed = false;
  readonly #conn: Deno.Conn;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    (async () => {
      const buf = new Uint8Array(4096);
      while (true) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) break;
        this.received += new TextDecoder().decode(buf.subarray(0, n));
      }
      this.close();
    })();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
  }
}

/** One GET on a fresh connection: its status, or 0 when none came within `deadlineMs`. */
async function get(port: number, deadlineMs: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), deadlineMs);
  let out = "";
  try {
    await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    const buf = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      out += new TextDecoder().decode(buf.subarray(0, n));
    }
    conn.close();
  } catch {
    // Timed out (closed under the read), or reset.
  } finally {
    clearTimeout(timer);
  }
  try {
    return parseResponses(out)[0]?.status ?? 0;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) the process has used, from /proc/PID/stat. */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 a second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function count(server: Spawned, pattern: RegExp): number {
  return [...server.log().matchAll(new RegExp(pattern, "g"))].length;
}

const LIMIT = 256;

Deno.test({
  name: "out of descriptors (ulimit 256): new connections get 503, no spinning, 200 once freed",
  ignore: !LINUX,
  fn: async () => {
    // 200 + 200 connections cannot fit in 256 descriptors: the kernel's limit is met before
    // --max-pending would answer 503.
    const server = await spawnServer("prlimit", [
      `--nofile=${LIMIT}:${LIMIT}`,
      Deno.execPath(),
      "run",
      "-A",
      "main.ts",
      "apps/hello.ts",
      "-b",
      "127.0.0.1:0",
      "--max-connections",
      "200",
      "--max-pending",
      "200",
      "--header-timeout",
      "120",
      "--access-log",
      "off",
    ], { cwd: ROOT, deadlineMs: 30_000 });
    const holders: Holder[] = [];
    try {
      assert.match(
        server.log(),
        /--max-connections 200 \+ --max-pending 200 need about 432 file descriptors, but the open-file limit is 256/,
      );
      const began = performance.now();
      // Connections that send nothing, opened until the server runs out; the first one it
      // refuses says so in the log.
      const until = Date.now() + 20_000;
      while (!/Out of file descriptors/.test(server.log())) {
        assert.ok(Date.now() < until && holders.length < 4 * LIMIT, "never ran out");
        const batch = await Promise.all(
          Array.from(
            { length: 8 },
            () => Deno.connect({ hostname: "127.0.0.1", port: server.port }),
          ),
        );
        holders.push(...batch.map((conn) => new Holder(conn)));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }

      // (1) While they hold every descriptor, a new client is told 503 at once.
      const clients = 20;
      const t503 = performance.now();
      const statuses = await Promise.all(
        Array.from({ length: clients }, () => get(server.port, 10_000)),
      );
      const refusedIn = performance.now() - t503;
      assert.deepEqual(statuses, Array(clients).fill(503), `statuses: ${statuses}`);
      const held = holders.filter((h) => !h.closed).length;
      const refusedHolders = holders.filter((h) => h.received.startsWith("HTTP/1.1 503 ")).length;

      // (3) No spinning while out of descriptors and idle.
      const cpuBefore = cpuSeconds(server.child.pid);
      const idleFrom = performance.now();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const cpuShare = (cpuSeconds(server.child.pid) - cpuBefore) /
        ((performance.now() - idleFrom) / 1000);
      assert.ok(cpuShare < 0.2, `the server used ${(cpuShare * 100).toFixed(0)}% of a CPU`);
      assert.equal(await get(server.port, 10_000), 503, "still refusing after the idle second");

      // (2) Once the holders go, a normal GET is served.
      for (const holder of holders) holder.close();
      const freed = performance.now();
      let status = 0;
      while (status !== 200 && performance.now() - freed < 20_000) {
        status = await get(server.port, 5_000);
      }
      const recoveredIn = performance.now() - freed;
      assert.equal(status, 200, "served after the holders closed");

      const seconds = (performance.now() - began) / 1000;
      const outOfLines = count(server, /Out of file descriptors/);
      const acceptFailedLines = count(server, /Accept failed/);
      console.log(
        `ulimit -n ${LIMIT}: ${held} connections held, ${refusedHolders} holders and ` +
          `${clients} clients refused 503 (the clients in ${refusedIn.toFixed(0)} ms); ` +
          `CPU while out and idle ${(cpuShare * 100).toFixed(1)}%; 200 again ` +
          `${recoveredIn.toFixed(0)} ms after the holders closed; ${outOfLines} "Out of file ` +
          `descriptors" and ${acceptFailedLines} "Accept failed" log lines in ${
            seconds.toFixed(1)
          } s`,
      );
      // At most one line a second each, plus the first.
      assert.ok(outOfLines <= seconds + 2, `${outOfLines} "Out of file descriptors" lines`);
      assert.ok(acceptFailedLines <= seconds + 2, `${acceptFailedLines} "Accept failed" lines`);
    } finally {
      for (const holder of holders) holder.close();
      const status = await stopServer(server);
      assert.equal(status.code, 0, server.log());
    }
  },
});
