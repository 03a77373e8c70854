// The WebSocket's own cost per echoed message, without the kernel: a socket whose reads hand
// out masked client frames (`batch` per read) and whose writes take everything at once, under
// the echo handler of tests/fixtures/ws_echo_app.ts. `deno bench -A bench/micro/websocket_bench.ts`

import { ServerWebSocket } from "../../src/server/websocket.ts";
import { clientFrame } from "../ws_frames.ts";

const MESSAGES = 20_000;

/** Reads hand out `perRead` frames at a time, `messages` in all, then the end. */
function echoConn(frame: Uint8Array, perRead: number, messages: number): Deno.Conn {
  const batch = new Uint8Array(frame.length * perRead);
  for (let i = 0; i < perRead; i++) batch.set(frame, i * frame.length);
  let left = messages / perRead;
  return {
    read(buf: Uint8Array): Promise<number | null> {
      if (left-- <= 0) return Promise.resolve(null);
      buf.set(batch.subarray(0, Math.min(buf.length, batch.length)));
      return Promise.resolve(Math.min(buf.length, batch.length));
    },
    write(bytes: Uint8Array): Promise<number> {
      return Promise.resolve(bytes.length);
    },
    close() {},
  } as unknown as Deno.Conn;
}

async function run(size: number, perRead: number): Promise<void> {
  const socket = new ServerWebSocket("ws://localhost/", "");
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => socket.send(event.data);
  const conn = echoConn(clientFrame(size, Uint8Array.of(1, 2, 3, 4)), perRead, MESSAGES);
  await socket.attach(conn, new Uint8Array(0), { maxMessage: 1 << 24, pingIntervalMs: 0 });
}

for (const [size, perRead] of [[64, 1], [64, 16]]) {
  Deno.bench(`${MESSAGES} echoes of ${size} B, ${perRead} per read`, async () => {
    await run(size, perRead);
  });
}
