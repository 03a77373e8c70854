// Behind a proxy: which peers are trusted to say who the client is, and reading what they say
// (X-Forwarded-For, X-Forwarded-Proto, RFC 7239 Forwarded) into REMOTE_ADDR and the scheme.
// From a peer that is not trusted these headers are plain headers and change nothing.

import type { Environ } from "../tsgi/types.ts";

/** The --forwarded-allow-ips list: "*", addresses, or IPv4 CIDR blocks, comma-separated. */
export class TrustedProxies {
  readonly #all: boolean;
  readonly #addresses = new Set<string>();
  readonly #blocks: [number, number][] = [];

  constructor(spec: string) {
    const items = spec.split(",").map((s) => s.trim()).filter((s) => s !== "");
    this.#all = items.includes("*");
    for (const item of items) {
      const block = parseIpv4Block(item);
      if (block) this.#blocks.push(block);
      else this.#addresses.add(normalizeAddress(item));
    }
  }

  /** Throws a message naming the bad entry; used to validate the flag. */
  static check(spec: string): string {
    for (const item of spec.split(",").map((s) => s.trim())) {
      if (item === "" || item === "*" || parseIpv4Block(item) || isIpAddress(item)) continue;
      throw new Error(`not an IP address, IPv4 CIDR block or *: "${item}"`);
    }
    return spec;
  }

  trusts(address: string): boolean {
    if (this.#all) return true;
    const normalized = normalizeAddress(address);
    if (this.#addresses.has(normalized)) return true;
    const v4 = ipv4ToNumber(normalized);
    if (v4 === null) return false;
    return this.#blocks.some(([net, mask]) => ((v4 & mask) >>> 0) === net);
  }
}

/**
 * Applies a trusted proxy's headers: the client is the right-most address that is not itself
 * a trusted proxy, and the scheme is the one the proxy says the client used.
 */
export function applyForwarded(environ: Environ, trusted: TrustedProxies): void {
  const forwarded = environ.HTTP_FORWARDED as string | undefined;
  if (forwarded !== undefined) return applyRfc7239(environ, forwarded, trusted);
  const chain = environ.HTTP_X_FORWARDED_FOR as string | undefined;
  if (chain !== undefined) {
    const client = rightmostUntrusted(chain.split(",").map((s) => s.trim()), trusted);
    if (client !== undefined) {
      environ.REMOTE_ADDR = client;
      environ.REMOTE_PORT = "";
    }
  }
  const proto = (environ.HTTP_X_FORWARDED_PROTO as string | undefined)?.split(",").pop()?.trim();
  if (proto === "https" || proto === "http") environ["tsgi.url_scheme"] = proto;
}

/** Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711" (RFC 7239 §4). */
function applyRfc7239(environ: Environ, value: string, trusted: TrustedProxies): void {
  const elements = value.split(",").map(parseForwardedElement);
  const fors = elements.map((e) => e.for).filter((f): f is string => f !== undefined);
  const client = rightmostUntrusted(fors, trusted);
  if (client !== undefined) {
    environ.REMOTE_ADDR = client;
    environ.REMOTE_PORT = "";
  }
  const proto = elements[elements.length - 1]?.proto?.toLowerCase();
  if (proto === "https" || proto === "http") environ["tsgi.url_scheme"] = proto;
}

function parseForwardedElement(element: string): { for?: string; proto?: string } {
  const out: { for?: string; proto?: string } = {};
  for (const pair of element.split(";")) {
    const eq = pair.indexOf("=");
    if (eq < 0) continue;
    const name = pair.slice(0, eq).trim().toLowerCase();
    let value = pair.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (name === "for") out.for = stripPort(value);
    else if (name === "proto") out.proto = value;
  }
  return out;
}

function stripPort(node: string): string {
  if (node.startsWith("[")) return node.slice(1, node.indexOf("]"));
  const colon = node.indexOf(":");
  return colon >= 0 && node.indexOf(":", colon + 1) < 0 ? node.slice(0, colon) : node;
}

function rightmostUntrusted(chain: string[], trusted: TrustedProxies): string | undefined {
  for (let i = chain.length - 1; i >= 0; i--) {
    const address = chain[i];
    if (!isIpAddress(address) && address !== "unknown") return undefined;
    if (i === 0 || !trusted.trusts(address)) return address;
  }
  return undefined;
}

function normalizeAddress(address: string): string {
  const lower = address.toLowerCase();
  // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
  return lower.startsWith("::ffff:") && lower.includes(".") ? lower.slice(7) : lower;
}

function ipv4ToNumber(address: string): number | null {
  const parts = address.split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return null;
    n = n * 256 + Number(part);
  }
  return n >>> 0;
}

function parseIpv4Block(item: string): [number, number] | null {
  const slash = item.indexOf("/");
  if (slash < 0) return null;
  const net = ipv4ToNumber(item.slice(0, slash));
  const bits = Number(item.slice(slash + 1));
  if (net === null || !Number.isInteger(bits) || bits < 0 || bits > 32) return null;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return [(net & mask) >>> 0, mask];
}

function isIpAddress(s: string): boolean {
  return ipv4ToNumber(s) !== null || (/^[0-9a-fA-F:.]+$/.test(s) && s.includes(":"));
}
