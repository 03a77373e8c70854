// A chat room: a Hono app where every message a WebSocket client sends goes to every client
// connected (`deno run -A main.ts apps/chat.ts`, then open ws://127.0.0.1:8000/ws twice).
// With --workers, each worker has its own room: a shared one needs a broker (Redis, …).

import { Hono } from "npm:hono@4";
import type { WSContext } from "npm:hono@4/ws";
import { upgradeWebSocket } from "../hono.ts";

const room = new Set<WSContext>();
const app = new Hono();

app.get("/", (c) => c.text("Chat: connect a WebSocket client to /ws\n"));

app.get(
  "/ws",
  upgradeWebSocket(() => ({
    onOpen(_event, ws) {
      room.add(ws);
    },
    onMessage(event, ws) {
      for (const peer of room) if (peer !== ws) peer.send(String(event.data));
    },
    onClose(_event, ws) {
      room.delete(ws);
    },
  })),
);

export default app;
