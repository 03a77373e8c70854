// Hono's WebSocket helper on tsgi: `app.get("/ws", upgradeWebSocket((c) => ({ onMessage })))`
// works as it does with `hono/deno`, on tsgi's own WebSocket (src/app/websocket.ts). Only apps
// that use Hono import this module; the server needs none of it.

import { defineWebSocketHelper, type UpgradeWebSocket, WSContext } from "npm:hono@4/ws";
import { upgradeWebSocket as upgradeRequest } from "./src/app/websocket.ts";
import { hasToken, offeredProtocols } from "./src/http/websocket_handshake.ts";
import type { ServerWebSocket } from "./src/server/websocket.ts";

export const upgradeWebSocket: UpgradeWebSocket<ServerWebSocket> = defineWebSocketHelper<
  ServerWebSocket
>((c, events, options) => {
  if (!hasToken(c.req.header("upgrade"), "websocket")) return;
  // The first subprotocol the client offers is answered, as hono/deno does.
  const offered = offeredProtocols((name) => c.req.header(name))[0];
  const { socket, response } = upgradeRequest(c.req.raw, {
    ...(offered ? { protocol: offered } : {}),
    ...(options as Record<string, unknown> | undefined),
  });
  const context = new WSContext({
    send: (data) => socket.send(data as string | ArrayBuffer | Uint8Array),
    close: (code, reason) => socket.close(code, reason),
    raw: socket,
    get protocol() {
      return socket.protocol;
    },
    get readyState() {
      return socket.readyState as 0 | 1 | 2 | 3;
    },
    url: new URL(socket.url),
  });
  socket.onopen = (event) => events.onOpen?.(event, context);
  socket.onmessage = (event) => events.onMessage?.(event as MessageEvent, context);
  socket.onclose = (event) => events.onClose?.(event as CloseEvent, context);
  socket.onerror = (event) => events.onError?.(event, context);
  return response;
});
