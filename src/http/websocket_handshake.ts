// The opening handshake of RFC 6455 §4.2, as checks on a request and the key for the answer:
// the server decides whether a request is an upgrade, and refuses a bad one with its status.

import { HttpError } from "./errors.ts";

/** The GUID every Sec-WebSocket-Accept is made with (RFC 6455 §1.3). */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const BASE64_OF_16_BYTES = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/** A request's fields, by lower-case name (repeated fields joined with ", "). */
export type FieldOf = (name: string) => string | undefined;

/** A refused upgrade, saying which version is spoken (426, §4.4). */
export class VersionError extends HttpError {
  constructor() {
    super(426, "WebSocket version 13 only", "Sec-WebSocket-Version: 13\r\n");
    this.name = "VersionError";
  }
}

/** Whether `list` (a comma-separated field) holds `token`, case aside (RFC 9110 §5.6.1). */
export function hasToken(list: string | undefined, token: string): boolean {
  if (list === undefined) return false;
  return list.split(",").some((item) => item.trim().toLowerCase() === token);
}

/** Whether the request asks for a WebSocket at all (an Upgrade: websocket field). */
export function isWebSocketRequest(field: FieldOf): boolean {
  return hasToken(field("upgrade"), "websocket");
}

/**
 * The client's key when the request is a valid opening handshake (§4.2.1); else the error:
 * 400 for a malformed one, 426 (VersionError) for another version.
 */
export function checkHandshake(method: string, minor: number, field: FieldOf): string | HttpError {
  if (method !== "GET") return new HttpError(400, "A WebSocket handshake is a GET");
  if (minor < 1) return new HttpError(400, "A WebSocket handshake needs HTTP/1.1");
  if (!hasToken(field("connection"), "upgrade")) {
    return new HttpError(400, "A WebSocket handshake needs Connection: upgrade");
  }
  if (!isWebSocketRequest(field)) return new HttpError(400, "Upgrade: websocket missing");
  if (field("sec-websocket-version")?.trim() !== "13") return new VersionError();
  const key = field("sec-websocket-key")?.trim() ?? "";
  if (!BASE64_OF_16_BYTES.test(key)) return new HttpError(400, "Invalid Sec-WebSocket-Key");
  return key;
}

/** Sec-WebSocket-Accept for `key`: base64(SHA-1(key + GUID)). */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + GUID));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** The subprotocols a client offers, in its order. */
export function offeredProtocols(field: FieldOf): string[] {
  const raw = field("sec-websocket-protocol");
  return raw === undefined ? [] : raw.split(",").map((p) => p.trim()).filter((p) => p !== "");
}
