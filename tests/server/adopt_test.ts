// Inherited listening sockets served by Deno listeners (src/server/adopt.ts): a socket made
// outside Deno and a socket passed to a child process both accept through the runtime's own
// accept(); what cannot be adopted says why.

import assert from "node:assert/strict";
import { AdoptError, adoptListener } from "../../src/server/adopt.ts";
import { openLibc } from "../../src/server/libc.ts";
import { listeningSockets } from "../../src/server/sockets.ts";
import { fromFileUrl } from "../support/paths.ts";

const CHILD = fromFileUrl(new URL("../fixtures/adopt_child.ts", import.meta.url));
const F_SETFD = 2;

/** A blocking TCP listening socket on 127.0.0.1, made with libc as systemd makes one. */
function rawListeningSocket(): { fd: number; port: number } {
  const c = openLibc()!;
  const fd = c.socket(2, 1, 0);
  const addr = new Uint8Array([2, 0, 0, 0, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(c.bind(fd, addr, 16), 0);
  assert.equal(c.listen(fd, 16), 0);
  const port = listeningSockets(c).find((s) => s.fd === fd)!.port;
  return { fd, port };
}

async function get(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/`);
  return await response.text();
}

Deno.test("a listening socket made outside Deno accepts through a Deno listener", async () => {
  const { fd, port } = rawListeningSocket();
  const { listener, socket } = adoptListener(fd);
  assert.equal(socket.port, port);
  const answering = (async () => {
    const conn = await listener.accept();
    await conn.read(new Uint8Array(4096));
    await conn.write(new TextEncoder().encode(
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    ));
    conn.close();
  })();
  assert.equal(await get(port), "ok");
  await answering;
  listener.close();
});

Deno.test("a child process adopts the listening socket it inherited", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const c = openLibc()!;
  const fd = listeningSockets(c).find((s) => s.port === port)!.fd;
  assert.equal(c.fcntl(fd, F_SETFD, 0), 0, "made inheritable");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, String(fd)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    assert.match((await reader.read()).value ?? "", /ready/);
    // This process never accepts: every answer comes from the child, through the shared queue.
    for (let i = 0; i < 5; i++) assert.equal(await get(port), `adopted by ${child.pid}`);
    reader.releaseLock();
  } finally {
    child.kill();
    await child.status;
    await child.stdout.cancel().catch(() => {});
    listener.close();
  }
});

Deno.test("what is not a listening socket is refused with the reason", () => {
  const file = Deno.openSync(fromFileUrl(new URL(import.meta.url)));
  try {
    const fds = [...Deno.readDirSync("/proc/self/fd")].map((e) => Number(e.name));
    const fileFd = fds.find((fd) => {
      try {
        return Deno.readLinkSync(`/proc/self/fd/${fd}`) === fromFileUrl(new URL(import.meta.url));
      } catch {
        return false;
      }
    })!;
    assert.throws(() => adoptListener(fileFd), (error: Error) => {
      assert.ok(error instanceof AdoptError);
      assert.match(error.message, /is not a listening socket/);
      return true;
    });
  } finally {
    file.close();
  }
});
