// socket_io.ts: the runtime's ops where it has them, the public methods elsewhere; either way
// a read says 0 at the end of the stream and a write says how much it took.

import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import { socketIo } from "../../src/server/socket_io.ts";

async function pair(): Promise<{ client: Deno.Conn; server: Deno.Conn; close(): void }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = await listener.accept();
  listener.close();
  return {
    client,
    server,
    close() {
      for (const conn of [client, server]) {
        try {
          conn.close();
        } catch { /* closed by the test */ }
      }
    },
  };
}

/** A Deno.Conn whose internals are hidden: only its public methods show. */
function publicOnly(conn: Deno.Conn): Deno.Conn {
  return {
    read: (buf: Uint8Array) => conn.read(buf),
    write: (buf: Uint8Array) => conn.write(buf),
  } as unknown as Deno.Conn;
}

for (
  const [name, wrap] of [["the runtime's ops", (c: Deno.Conn) => c], [
    "the public methods",
    publicOnly,
  ]] as const
) {
  Deno.test(`socket I/O through ${name}: bytes both ways, 0 at the end of the stream`, async () => {
    const { client, server, close } = await pair();
    try {
      const io = socketIo(wrap(server));
      assertEquals(name === "the public methods", io.constructor.name === "ConnIo");
      assertEquals(await io.write(new TextEncoder().encode("pong")), 4);
      const got = new Uint8Array(8);
      assertEquals(await client.read(got), 4);
      await client.write(new TextEncoder().encode("ping"));
      const buf = new Uint8Array(16);
      const n = await io.read(buf);
      assertEquals(new TextDecoder().decode(buf.subarray(0, n)), "ping");
      await client.closeWrite();
      assertEquals(await io.read(buf), 0);
      client.close();
    } finally {
      close();
    }
  });
}

Deno.test("socket I/O: a read on a closed socket rejects, as Deno.Conn's does", async () => {
  const { server, close } = await pair();
  try {
    const io = socketIo(server);
    const pending = io.read(new Uint8Array(16));
    server.close();
    let failed = false;
    try {
      await pending;
    } catch {
      failed = true;
    }
    assert(failed || (await pending) === 0);
  } finally {
    close();
  }
});

Deno.test("socket I/O: cancelRead() stops the read in flight before a byte lands in its array", async () => {
  const { client, server, close } = await pair();
  try {
    const io = socketIo(server);
    assert(io.canCancelRead, "this runtime has the op (the server's readInto() relies on it)");
    const buf = new Uint8Array(16);
    const pending = io.read(buf).then(() => "read", () => "rejected");
    io.cancelRead();
    await client.write(new TextEncoder().encode("late"));
    assertEquals(await pending, "rejected");
    // The late bytes had their chance to be read: a second socket carries a round trip first.
    const other = await pair();
    await other.client.write(new Uint8Array([1]));
    await other.server.read(new Uint8Array(1));
    other.close();
    assertEquals([...buf], new Array(16).fill(0));
  } finally {
    close();
  }
  assertEquals(socketIo(publicOnly(server)).canCancelRead, false);
});
