// --max-memory: a worker whose RSS passes the limit asks to be replaced, as --max-requests makes
// it do, and says why in the log. The RSS travels in the heartbeat, parsed strictly. The pool
// test runs a real master and worker (`deno run main.ts --workers 1`) with an app that keeps
// the memory it allocates, under load: the worker is replaced and no request fails.

import assert from "node:assert/strict";
import { encodeMessage, parseMessage } from "../../src/pool/control.ts";
import { ConfigError, settingFor } from "../../src/cli/settings.ts";
import { fromFileUrl } from "../support/paths.ts";
import { exited, spawnServer, stopServer, waitUntil } from "../support/process.ts";
import { parseResponses } from "../support/server.ts";

const MAIN = fromFileUrl(new URL("../../main.ts", import.meta.url));
const ROOT = fromFileUrl(new URL("../..", import.meta.url));
const APP = "tests/fixtures/memory_app.ts";
const MIB = 1024 * 1024;

Deno.test("a heartbeat carries the RSS, and one with a bad RSS or count is not a message", () => {
  const line = (m: Parameters<typeof encodeMessage>[0]) =>
    new TextDecoder().decode(encodeMessage(m)).trimEnd();
  for (const message of [{ t: "hb", n: 7, rss: 212 * MIB }, { t: "hb", n: 0, rss: 0 }] as const) {
    assert.deepEqual(parseMessage(line(message)), message);
  }
  // Without an RSS (a worker that does not measure it) it is still a heartbeat.
  assert.deepEqual(parseMessage('{"t":"hb","n":3}'), { t: "hb", n: 3 });
  for (
    const bad of [
      '{"t":"hb","n":1,"rss":-1}',
      '{"t":"hb","n":1,"rss":1.5}',
      '{"t":"hb","n":1,"rss":"2000"}',
      '{"t":"hb","n":1,"rss":null}',
      '{"t":"hb","n":1,"rss":1e300}',
      '{"t":"hb","n":1,"rss":[1]}',
      '{"t":"hb","n":-1,"rss":1}',
      '{"t":"hb","n":0.5,"rss":1}',
      '{"t":"hb","n":9007199254740993,"rss":1}',
    ]
  ) {
    assert.equal(parseMessage(bad), null, bad);
  }
});

Deno.test("--max-memory takes a size, 0 by default (no limit)", () => {
  const setting = settingFor("maxMemory")!;
  assert.equal(setting.default, 0);
  assert.equal(setting.section, "workers");
  assert.equal(setting.parse(["512M"], "max-memory"), 512 * MIB);
  assert.equal(setting.parse(["1G"], "max-memory"), 1024 * MIB);
  assert.equal(setting.parse(["0"], "max-memory"), 0);
  assert.throws(
    () => setting.parse(["lots"], "max-memory"),
    (error) => error instanceof ConfigError && /^--max-memory: expected a size/.test(error.message),
  );
});

/** One request on a connection of its own: the worker's pid and RSS, or an error. */
async function get(port: number, path: string): Promise<{ pid: number; rss: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
    );
    let text = "";
    const buf = new Uint8Array(4096);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    const [response] = text === "" ? [] : parseResponses(text);
    if (response?.status !== 200) throw new Error(`${path}: ${JSON.stringify(text)}`);
    const [pid, rss] = response.body.split(" ").map(Number);
    return { pid, rss };
  } finally {
    conn.close();
  }
}

Deno.test("--max-memory: a worker past it is replaced under load, and no request fails", async () => {
  const limit = 160 * MIB;
  const pool = await spawnServer(Deno.execPath(), [
    ...["run", "-A", MAIN, APP, "--workers", "1", "--max-memory", "160M"],
    ...["-b", "127.0.0.1:0", "--access-log", "off"],
  ], { cwd: ROOT });
  const failures: string[] = [];
  const pids = new Set<number>();
  let running = true;
  try {
    await waitUntil("the worker is ready", () => /Worker 1 \(pid \d+\) ready/.test(pool.log()));
    const first = await get(pool.port, "/");
    assert.ok(first.rss < limit / 2, `a fresh worker's RSS (${first.rss}) is well below`);

    // Steady load on fresh connections and on a keep-alive one, through the replacement.
    let answered = 0;
    const record = (answer: { pid: number }) => {
      answered++;
      pids.add(answer.pid);
    };
    const fail = (error: unknown) => failures.length < 5 && failures.push(String(error));
    const loops = [0, 1].map(async () => {
      while (running) await get(pool.port, "/").then(record, fail);
    });
    loops.push((async () => {
      const client = Deno.createHttpClient({});
      while (running) {
        await fetch(`http://127.0.0.1:${pool.port}/`, { client })
          .then((r) => r.text())
          .then((text) => record({ pid: Number(text.split(" ")[0]) }), fail);
      }
      client.close();
    })());

    // A leak: 16 MiB kept per request, until the app's own answer shows the RSS past the
    // limit; the worker's next heartbeat (a second at most) notices.
    const past =
      /Worker 1 RSS (\d+\.\d) MiB is past --max-memory 160\.0 MiB: asking to be replaced/;
    let grown = 0;
    for (let rss = first.rss; rss <= limit && grown < 40; grown++) {
      rss = (await get(pool.port, "/grow?mb=16")).rss;
    }
    await waitUntil("the worker says it is past the limit", () => past.test(pool.log()));
    const said = Number(past.exec(pool.log())![1]);
    assert.ok(said * MIB > limit, `the RSS it gives (${said} MiB) is past the limit`);
    const retiring = new RegExp(
      `Worker 1 \\(pid ${first.pid}\\) retiring \\(RSS \\d+\\.\\d MiB\\)`,
    );
    await waitUntil("the master says it replaces it", () => retiring.test(pool.log()));

    // A fresh worker serves, the old one has gone, and the load kept being answered.
    await waitUntil(
      "the replacement is ready",
      () => /Worker 2 \(pid \d+\) ready/.test(pool.log()),
    );
    const gone = new RegExp(`Worker 1 \\(pid ${first.pid}\\) exited \\(\\d+ requests`);
    await waitUntil("the old worker has exited", () => gone.test(pool.log()));
    assert.ok(exited(first.pid));
    const fresh = await get(pool.port, "/");
    assert.notEqual(fresh.pid, first.pid);
    assert.ok(fresh.rss < limit, `the replacement starts below the limit (${fresh.rss})`);
    await waitUntil("the load reaches the replacement", () => pids.has(fresh.pid));
    running = false;
    await Promise.all(loops);
    console.log(
      `--max-memory 160M: replaced after ${grown} × 16 MiB (RSS ${said} MiB); ` +
        `${answered} requests answered by ${pids.size} workers, ${failures.length} failed`,
    );
    assert.deepEqual(failures, [], "no request failed");
  } finally {
    running = false;
    assert.equal((await stopServer(pool)).code, 0);
  }
});
