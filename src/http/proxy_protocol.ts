// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2): what a TCP load
// balancer (HAProxy's send-proxy and send-proxy-v2, AWS NLB, ...) puts before the client's bytes
// to say whose connection it relays. Pure and incremental over bytes, no I/O: given what has
// arrived, parseProxyHeader() answers with the header, a refusal, or a wait for more bytes. It
// never reads past its bounds — a v1 line is at most 107 bytes, a v2 header at most 16 +
// V2_MAX_PAYLOAD — so a peer can make it neither wait on nor hold more than that. Its answer
// never depends on how the bytes were cut: refusals are decided in byte order, from bytes seen.

/** A v1 header's longest line, "PROXY" through CRLF (the specification's own bound). */
export const V1_MAX_LENGTH = 107;
/**
 * The most bytes a v2 header may carry after its fixed 16: the address block (216 bytes at
 * most, for unix sockets) and the TLVs. HAProxy's SSL, unique-id and authority TLVs, AWS's
 * and GCP's fit well within it.
 */
export const V2_MAX_PAYLOAD = 2048;

const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const V2_FIXED = 16;
const V1_PREFIX = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20]; // "PROXY "
const CR = 0x0d;
const LF = 0x0a;

/** v2 address family and transport (the 14th byte) this server accepts with PROXY. */
const V2_UNSPEC = 0x00;
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;
const V2_UNIX_STREAM = 0x31;
/** The address block's length for each of them: addresses, then ports. */
const V2_ADDRESS_BYTES: Readonly<Record<number, number>> = {
  [V2_UNSPEC]: 0,
  [V2_TCP4]: 12,
  [V2_TCP6]: 36,
  [V2_UNIX_STREAM]: 216,
};

/** The relayed connection's two ends, as the proxy saw them. */
export interface ProxyAddresses {
  /** The client: an IPv4 address, or an IPv6 one in RFC 5952 form. */
  sourceAddress: string;
  sourcePort: number;
  /** The address the client connected to, on the proxy. */
  destinationAddress: string;
  destinationPort: number;
}

/** A whole header. */
export interface ProxyHeader {
  version: 1 | 2;
  /**
   * The relayed connection's addresses; null when the header names none (v1 UNKNOWN, v2 LOCAL
   * — the proxy's own connection, a health check — or a v2 family that is not TCP over IP):
   * the peer's own address stands.
   */
  addresses: ProxyAddresses | null;
  /**
   * True for v2 LOCAL only: the proxy speaks for itself (a health check). Any other header
   * without addresses relays a client the proxy could not name, who must not be trusted.
   */
  local: boolean;
  /** Its length in bytes: the client's own bytes start right after it. */
  length: number;
}

/** The bytes are not a PROXY header this server accepts: the connection is to be closed. */
export class ProxyHeaderError {
  /** Whether the bytes do not even begin like a PROXY header (a client speaking HTTP). */
  readonly missing: boolean;
  readonly reason: string;

  constructor(reason: string, missing = false) {
    this.reason = reason;
    this.missing = missing;
  }
}

/**
 * The PROXY header at the start of buf[start, end): the header, a ProxyHeaderError, or
 * undefined when more bytes are needed to decide. Call it again with the same start and a
 * later end as bytes arrive.
 */
export function parseProxyHeader(
  buf: Uint8Array,
  start: number,
  end: number,
): ProxyHeader | ProxyHeaderError | undefined {
  if (end <= start) return undefined;
  const first = buf[start];
  if (first === V1_PREFIX[0]) return parseV1(buf, start, end);
  if (first === V2_SIGNATURE[0]) return parseV2(buf, start, end);
  return new ProxyHeaderError("no PROXY header", true);
}

/** Whether buf[start, end) agrees with `prefix` as far as both go. */
function agrees(buf: Uint8Array, start: number, end: number, prefix: number[]): boolean {
  const n = Math.min(end - start, prefix.length);
  for (let i = 0; i < n; i++) if (buf[start + i] !== prefix[i]) return false;
  return true;
}

// --- version 1 --------------------------------------------------------------------------------

/** "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n", "PROXY UNKNOWN\r\n". */
function parseV1(
  buf: Uint8Array,
  start: number,
  end: number,
): ProxyHeader | ProxyHeaderError | undefined {
  if (!agrees(buf, start, end, V1_PREFIX)) return new ProxyHeaderError("no PROXY header", true);
  const limit = Math.min(end, start + V1_MAX_LENGTH);
  let lineEnd = -1;
  for (let i = start; i < limit; i++) {
    const c = buf[i];
    if (c === CR) {
      if (i + 1 >= limit) break;
      if (buf[i + 1] !== LF) return new ProxyHeaderError("v1: CR without LF");
      lineEnd = i;
      break;
    }
    if (c === LF) return new ProxyHeaderError("v1: LF without CR");
    if (c < 0x20 || c > 0x7e) {
      return new ProxyHeaderError(`v1: byte 0x${c.toString(16).padStart(2, "0")} in the line`);
    }
  }
  if (lineEnd < 0) {
    if (limit - start >= V1_MAX_LENGTH) {
      return new ProxyHeaderError(`v1: no CRLF within ${V1_MAX_LENGTH} bytes`);
    }
    return undefined;
  }
  const line = String.fromCharCode(...buf.subarray(start, lineEnd));
  const length = lineEnd + 2 - start;
  const parts = line.split(" ");
  const protocol = parts[1];
  // The receiver ignores what follows UNKNOWN (the specification says so).
  if (protocol === "UNKNOWN") return { version: 1, addresses: null, local: false, length };
  if (protocol !== "TCP4" && protocol !== "TCP6") {
    return new ProxyHeaderError(
      `v1: protocol ${JSON.stringify(protocol ?? "")} is not TCP4, TCP6 or UNKNOWN`,
    );
  }
  if (parts.length !== 6) {
    return new ProxyHeaderError(`v1: ${parts.length - 2} fields after ${protocol}, not 4`);
  }
  const parse = protocol === "TCP4" ? canonicalIpv4 : canonicalIpv6;
  const source = parse(parts[2]);
  if (source === null) return new ProxyHeaderError(`v1: bad ${protocol} source address`);
  const destination = parse(parts[3]);
  if (destination === null) return new ProxyHeaderError(`v1: bad ${protocol} destination address`);
  const sourcePort = parsePort(parts[4]);
  if (sourcePort < 0) return new ProxyHeaderError("v1: bad source port");
  const destinationPort = parsePort(parts[5]);
  if (destinationPort < 0) return new ProxyHeaderError("v1: bad destination port");
  return {
    version: 1,
    local: false,
    addresses: {
      sourceAddress: source,
      sourcePort,
      destinationAddress: destination,
      destinationPort,
    },
    length,
  };
}

/** A port in decimal, 0 to 65535, without leading zeros; -1 if it is not one. */
function parsePort(text: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return -1;
  const port = Number(text);
  return port <= 65535 ? port : -1;
}

/** Dotted decimal, four parts of 0 to 255 without leading zeros (as inet_pton takes it). */
function canonicalIpv4(text: string): string | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part) || Number(part) > 255) return null;
  }
  return text;
}

/** An IPv6 address in any RFC 4291 form, returned in RFC 5952's; null if it is not one. */
function canonicalIpv6(text: string): string | null {
  const bytes = parseIpv6(text);
  return bytes === null ? null : formatIpv6(bytes, 0);
}

/** RFC 4291 §2.2 text to 16 bytes: groups of 1–4 hex digits, one "::", a dotted IPv4 tail. */
function parseIpv6(text: string): Uint8Array | null {
  if (text.length < 2 || text.length > 45) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups: number[][] = [];
  for (let h = 0; h < halves.length; h++) {
    const half = halves[h];
    const words: number[] = [];
    if (half !== "") {
      const pieces = half.split(":");
      for (let i = 0; i < pieces.length; i++) {
        const piece = pieces[i];
        const last = i === pieces.length - 1 && h === halves.length - 1;
        if (last && piece.includes(".")) {
          if (canonicalIpv4(piece) === null) return null;
          const [a, b, c, d] = piece.split(".").map(Number);
          words.push(a * 256 + b, c * 256 + d);
        } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
          words.push(parseInt(piece, 16));
        } else return null;
      }
    }
    groups.push(words);
  }
  const count = groups.reduce((n, words) => n + words.length, 0);
  // A "::" stands for one group of zeros or more; without one, all eight are written.
  if (halves.length === 2 ? count > 7 : count !== 8) return null;
  const words = halves.length === 2
    ? [...groups[0], ...new Array(8 - count).fill(0), ...groups[1]]
    : groups[0];
  const bytes = new Uint8Array(16);
  words.forEach((word, i) => {
    bytes[2 * i] = word >> 8;
    bytes[2 * i + 1] = word & 0xff;
  });
  return bytes;
}

// --- version 2 --------------------------------------------------------------------------------

/** A 12-byte signature, version and command, family, length, then the address block and TLVs. */
function parseV2(
  buf: Uint8Array,
  start: number,
  end: number,
): ProxyHeader | ProxyHeaderError | undefined {
  if (!agrees(buf, start, end, V2_SIGNATURE)) return new ProxyHeaderError("no PROXY header", true);
  if (end - start < V2_FIXED) return undefined;
  const versionCommand = buf[start + 12];
  if (versionCommand >> 4 !== 2) return new ProxyHeaderError(`v2: version ${versionCommand >> 4}`);
  const command = versionCommand & 0x0f;
  if (command > 1) return new ProxyHeaderError(`v2: unknown command ${command}`);
  const family = buf[start + 13];
  const payload = (buf[start + 14] << 8) | buf[start + 15];
  if (payload > V2_MAX_PAYLOAD) {
    return new ProxyHeaderError(
      `v2: ${payload} bytes of addresses and TLVs (at most ${V2_MAX_PAYLOAD})`,
    );
  }
  const local = command === 0;
  const addressBytes = V2_ADDRESS_BYTES[family];
  // LOCAL: the proxy's own connection; its block, family included, is skipped unread.
  if (!local) {
    if (addressBytes === undefined) {
      return new ProxyHeaderError(
        `v2: family and transport 0x${family.toString(16).padStart(2, "0")} are not TCP`,
      );
    }
    if (payload < addressBytes) {
      return new ProxyHeaderError(
        `v2: ${payload} bytes are too few for the addresses (${addressBytes})`,
      );
    }
  }
  const length = V2_FIXED + payload;
  if (end - start < length) return undefined;
  if (local) return { version: 2, addresses: null, local: true, length };
  const block = start + V2_FIXED;
  const tlvError = checkTlvs(buf, block + addressBytes, start + length);
  if (tlvError !== null) return tlvError;
  return { version: 2, addresses: v2Addresses(buf, block, family), local: false, length };
}

/** TLVs — type, two bytes of length, value — must tile buf[from, to) exactly; each is skipped. */
function checkTlvs(buf: Uint8Array, from: number, to: number): ProxyHeaderError | null {
  let at = from;
  while (at < to) {
    if (to - at < 3) return new ProxyHeaderError(`v2: ${to - at} stray byte(s) after the TLVs`);
    const size = (buf[at + 1] << 8) | buf[at + 2];
    if (at + 3 + size > to) {
      return new ProxyHeaderError(
        `v2: TLV 0x${buf[at].toString(16).padStart(2, "0")} of ${size} bytes overruns the header`,
      );
    }
    at += 3 + size;
  }
  return null;
}

function v2Addresses(buf: Uint8Array, block: number, family: number): ProxyAddresses | null {
  const port = (at: number) => (buf[at] << 8) | buf[at + 1];
  if (family === V2_TCP4) {
    return {
      sourceAddress: formatIpv4(buf, block),
      destinationAddress: formatIpv4(buf, block + 4),
      sourcePort: port(block + 8),
      destinationPort: port(block + 10),
    };
  }
  if (family === V2_TCP6) {
    return {
      sourceAddress: formatIpv6(buf, block),
      destinationAddress: formatIpv6(buf, block + 16),
      sourcePort: port(block + 32),
      destinationPort: port(block + 34),
    };
  }
  // UNSPEC, or a unix socket's paths: nothing an IP peer's address could be replaced with.
  return null;
}

function formatIpv4(buf: Uint8Array, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

/**
 * RFC 5952: lower-case hex without leading zeros, the longest run of two or more zero groups
 * (the first of equals) as "::", and an IPv4-mapped address as ::ffff:a.b.c.d.
 */
function formatIpv6(buf: Uint8Array, at: number): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((buf[at + 2 * i] << 8) | buf[at + 2 * i + 1]);
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${formatIpv4(buf, at + 12)}`;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    words.slice(from, to).map((w) => w.toString(16)).join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}
