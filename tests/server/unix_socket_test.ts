// --bind unix:/path: served, mode from --umask, stale files replaced, live ones refused,
// removed on a clean stop.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { parseResponses } from "../support/server.ts";

const MAIN = fromFileUrl(new URL("../../main.ts", import.meta.url));

function startServer(args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "apps/hello.ts", "--access-log", "off", ...args],
    cwd: fromFileUrl(new URL("../..", import.meta.url)),
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

async function readUntil(stream: ReadableStream<Uint8Array>, pattern: RegExp): Promise<string> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!pattern.test(text)) {
    const { done, value } = await reader.read();
    if (done) break;
    text += value;
  }
  reader.releaseLock();
  return text;
}

async function getOverUnix(path: string): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path });
  await conn.write(
    new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
  );
  let text = "";
  const buf = new Uint8Array(4096);
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  conn.close();
  return text;
}

Deno.test("tsgi serves a unix socket with the --umask mode, replaces a stale one, refuses a live one", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/tsgi.sock`;
  try {
    const crashed = startServer(["-b", `unix:${path}`]);
    assert.match(await readUntil(crashed.stderr, /Listening on unix:/), /Listening on unix:/);
    crashed.kill("SIGKILL");
    await crashed.status;
    assert.ok(Deno.lstatSync(path).isSocket, "a crash leaves the socket file behind");

    const server = startServer(["-b", `unix:${path}`, "--umask", "007"]);
    const log = await readUntil(server.stderr, /Listening on unix:/);
    assert.match(log, new RegExp(`Listening on unix:${path}`));
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o660);
    assert.equal(parseResponses(await getOverUnix(path))[0].body, "Hello, World!\n");

    const second = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "apps/hello.ts", "-b", `unix:${path}`],
      cwd: fromFileUrl(new URL("../..", import.meta.url)),
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(second.code, 1);
    assert.match(new TextDecoder().decode(second.stderr), /is in use by another server/);

    server.kill("SIGTERM");
    assert.equal((await server.status).code, 0);
    await server.stderr.cancel().catch(() => {});
    assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound, "removed on a clean stop");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tsgi refuses HTTPS on a unix socket, naming the flags", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "apps/hello.ts",
      "-b",
      "unix:/tmp/tsgi-never.sock",
      "--certfile",
      "/dev/null",
      "--keyfile",
      "/dev/null",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 2);
  assert.match(new TextDecoder().decode(output.stderr), /--certfile|not a PEM file/);
});
