// A request that asks for a WebSocket: what the server offers the app through the environ
// (`tsgi.server.websocket`, docs/tsgi.md), the checks on the handshake when the app takes the
// offer, and the 101 the server writes before it hands the connection to the socket.

import { HttpError } from "../http/errors.ts";
import { type DeflatePolicy, negotiateDeflate } from "../http/websocket_deflate.ts";
import { zlibUsable } from "./websocket_compression.ts";
import {
  acceptKey,
  checkHandshake,
  type FieldOf,
  hasToken,
  offeredProtocols,
} from "../http/websocket_handshake.ts";
import type { RequestHead } from "../http/parser.ts";
import { requestAuthority } from "../tsgi/environ.ts";
import type { Environ } from "../tsgi/types.ts";
import { ServerWebSocket } from "./websocket.ts";

/** The fields of a request, by lower-case name, read from its environ. */
export function fieldsOf(environ: Environ): FieldOf {
  return (name) => environ[`HTTP_${name.toUpperCase().replaceAll("-", "_")}`] as string | undefined;
}

/** Whether `head` with `environ` asks for a WebSocket (the app may still refuse it). */
export function asksForWebSocket(head: RequestHead, environ: Environ): boolean {
  // On every request: one property lookup, and nothing more for the requests without one.
  const upgrade = environ.HTTP_UPGRADE as string | undefined;
  return upgrade !== undefined && head.method === "GET" && hasToken(upgrade, "websocket");
}

/** What the app accepted: the socket, and what the 101 says. */
export interface AcceptedUpgrade {
  socket: ServerWebSocket;
  accept: Promise<string>;
  protocol: string;
  /** The Sec-WebSocket-Extensions the 101 answers with ("": none). */
  extensions: string;
}

/**
 * The offer in the environ. Calling it checks the handshake — a malformed one throws its
 * HttpError (400, or 426 for another version), which answers the request — and returns the
 * socket; `taken()` then says what to answer with.
 */
export class UpgradeOffer {
  readonly #head: RequestHead;
  readonly #environ: Environ;
  readonly #deflate: DeflatePolicy | null;
  #accepted: AcceptedUpgrade | null = null;

  /** `deflate`: the server's terms for permessage-deflate (--ws-deflate), or null: not offered. */
  constructor(head: RequestHead, environ: Environ, deflate: DeflatePolicy | null = null) {
    this.#head = head;
    this.#environ = environ;
    this.#deflate = deflate;
  }

  get accepted(): AcceptedUpgrade | null {
    return this.#accepted;
  }

  readonly take = (options: { protocol?: string } = {}): ServerWebSocket => {
    if (this.#accepted !== null) throw new TypeError("This request was upgraded already");
    const field = fieldsOf(this.#environ);
    const key: string | HttpError = checkHandshake(this.#head.method, this.#head.minor, field);
    if (typeof key !== "string") throw key;
    const deflate = this.#deflate === null || !zlibUsable()
      ? null
      : negotiateDeflate(field("sec-websocket-extensions"), this.#deflate);
    if (deflate instanceof HttpError) throw deflate;
    const protocol = options.protocol ?? "";
    if (protocol !== "" && !offeredProtocols(field).includes(protocol)) {
      throw new TypeError(`The client did not offer the subprotocol "${protocol}"`);
    }
    const socket = new ServerWebSocket(urlOf(this.#environ), protocol, deflate);
    this.#accepted = { socket, accept: acceptKey(key), protocol, extensions: socket.extensions };
    return socket;
  };
}

/** The 101's head (RFC 6455 §4.2.2). */
export async function switchingProtocols(upgrade: AcceptedUpgrade): Promise<Uint8Array> {
  const protocol = upgrade.protocol === "" ? "" : `Sec-WebSocket-Protocol: ${upgrade.protocol}\r\n`;
  const extensions = upgrade.extensions === ""
    ? ""
    : `Sec-WebSocket-Extensions: ${upgrade.extensions}\r\n`;
  return new TextEncoder().encode(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${await upgrade.accept}\r\n${protocol}${extensions}\r\n`,
  );
}

function urlOf(environ: Environ): string {
  const scheme = environ["tsgi.url_scheme"] === "https" ? "wss" : "ws";
  // An absolute-form target (`GET http://host/path`) gives its path and query only.
  const raw = environ.RAW_URI;
  const target = raw.startsWith("/") ? raw : raw.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "");
  return `${scheme}://${requestAuthority(environ)}${target || "/"}`;
}
