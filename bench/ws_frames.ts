// Frames a WebSocket client sends, for the benches (bench/ws_epoll_client.ts,
// bench/micro/websocket_bench.ts): built and masked once, sent again and again.

/** The frame a client sends: binary, FIN, masked with `mask`, payload byte i = i & 0xff. */
export function clientFrame(size: number, mask: Uint8Array): Uint8Array {
  const head = size < 126 ? 2 : size < 65536 ? 4 : 10;
  const frame = new Uint8Array(head + 4 + size);
  frame[0] = 0x82;
  if (size < 126) frame[1] = 0x80 | size;
  else if (size < 65536) {
    frame[1] = 0x80 | 126;
    new DataView(frame.buffer).setUint16(2, size);
  } else {
    frame[1] = 0x80 | 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(size));
  }
  frame.set(mask, head);
  for (let i = 0; i < size; i++) frame[head + 4 + i] = (i & 0xff) ^ mask[i & 3];
  return frame;
}
