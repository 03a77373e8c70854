// WebSockets for apps, as `Deno.upgradeWebSocket` offers them: `upgradeWebSocket(request)`
// gives a fetch app `{ socket, response }`; a TSGI app calls `environ["tsgi.server.websocket"]`
// (docs/tsgi.md). Either way the server checks the handshake and writes the 101 itself.

import type { Environ } from "../tsgi/types.ts";
import type { ServerWebSocket } from "../server/websocket.ts";

/** What an app may ask of the upgrade. */
export interface UpgradeOptions {
  /** The subprotocol to answer with; it must be one the client offered. */
  protocol?: string;
  /** Accepted for `Deno.upgradeWebSocket`'s sake; the server's ping interval rules. */
  idleTimeout?: number;
}

/** `environ["tsgi.server.websocket"]`: present on a valid handshake, once. */
export type WebSocketUpgrade = (options?: UpgradeOptions) => ServerWebSocket;

/** The environ behind each Request the fetch adapter made (for upgradeWebSocket()). */
const environs = new WeakMap<Request, Environ>();

/** Marks the Response that stands for the 101: the adapter sends nothing of its own for it. */
export const UPGRADED = Symbol("tsgi upgraded");

/** Called by the fetch adapter for each Request it builds. */
export function rememberEnviron(request: Request, environ: Environ): void {
  environs.set(request, environ);
}

/**
 * Upgrades a fetch app's request, as `Deno.upgradeWebSocket` does: the socket, and the
 * response to return from the handler. Throws TypeError for a request that is not a WebSocket
 * handshake (or one served by another server).
 *
 * ```ts
 * export default {
 *   fetch(request: Request) {
 *     const { socket, response } = upgradeWebSocket(request);
 *     socket.onmessage = (e) => socket.send(e.data);
 *     return response;
 *   },
 * };
 * ```
 */
export function upgradeWebSocket(
  request: Request,
  options: UpgradeOptions = {},
): { socket: ServerWebSocket; response: Response } {
  const upgrade = environs.get(request)?.["tsgi.server.websocket"] as WebSocketUpgrade | undefined;
  if (upgrade === undefined) {
    throw new TypeError("Invalid Header: 'upgrade' header must contain 'websocket'");
  }
  const socket = upgrade(options);
  const response = new Response(null, { status: 200 });
  Object.defineProperty(response, UPGRADED, { value: true });
  return { socket, response };
}

/** Whether `response` is the one upgradeWebSocket() returned. */
export function isUpgradeResponse(response: Response): boolean {
  return (response as unknown as Record<symbol, unknown>)[UPGRADED] === true;
}
