// The PROXY protocol parser (src/http/proxy_protocol.ts) against headers valid and malformed,
// v1 and v2, each replayed whole, cut at every byte boundary and fed byte by byte: the answer
// must be the same however the bytes arrive, and come no later than the header's last byte.
// Then mutated and random inputs: it never throws, never waits past its bounds (107 bytes for
// v1, 16 + V2_MAX_PAYLOAD for v2) and never claims more bytes than it was given.

import assert from "node:assert/strict";
import {
  parseProxyHeader,
  type ProxyHeader,
  ProxyHeaderError,
  V1_MAX_LENGTH,
  V2_MAX_PAYLOAD,
} from "../../src/http/proxy_protocol.ts";
import { bytes } from "../support/feed.ts";

type Answer = ProxyHeader | ProxyHeaderError | undefined;

/** What a parse said, as a plain value: the header, or the refusal and its reason. */
function plain(answer: Answer): unknown {
  if (answer instanceof ProxyHeaderError) {
    return { error: answer.reason, missing: answer.missing };
  }
  return answer;
}

/**
 * Feeds `input` as the pieces `cuts` make of it, calling the parser on what has arrived after
 * each piece, at a non-zero offset in a larger buffer; returns its first answer that is not
 * "more bytes", with how many bytes had arrived then.
 */
function feed(input: Uint8Array, cuts: number[]): { answer: Answer; seen: number } {
  const buf = new Uint8Array(input.length + 13).fill(0x41);
  const offset = 7;
  buf.set(input, offset);
  for (const cut of [...cuts, input.length]) {
    // The bytes past what has arrived are garbage the parser must not look at.
    buf.fill(0xee, offset + cut);
    const answer = parseProxyHeader(buf, offset, offset + cut);
    if (answer !== undefined) return { answer, seen: cut };
    buf.set(input.subarray(cut), offset + cut);
  }
  return { answer: undefined, seen: input.length };
}

/** The answer for `input`, checked to be the same for every way of cutting it. */
function parseEverySplit(input: Uint8Array): Answer {
  const whole = feed(input, []);
  const want = plain(whole.answer);
  for (let cut = 1; cut < input.length; cut++) {
    const split = feed(input, [cut]);
    assert.deepEqual(plain(split.answer), want, `cut at ${cut} of ${printable(input)}`);
  }
  const byByte = feed(input, Array.from({ length: input.length }, (_, i) => i));
  assert.deepEqual(plain(byByte.answer), want, `byte by byte: ${printable(input)}`);
  // A header is known at its last byte, and never from bytes it does not own.
  if (whole.answer !== undefined && !(whole.answer instanceof ProxyHeaderError)) {
    assert.equal(byByte.seen, whole.answer.length, "decided at the header's last byte");
  }
  return whole.answer;
}

function printable(input: Uint8Array): string {
  return JSON.stringify(String.fromCharCode(...input.subarray(0, 120)));
}

function concat(...parts: (Uint8Array | number[] | string)[]): Uint8Array {
  const arrays = parts.map((p) => typeof p === "string" ? bytes(p) : Uint8Array.from(p));
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A v2 header: version/command byte, family byte, then the payload (length filled in). */
function v2(versionCommand: number, family: number, ...payload: (number[] | Uint8Array)[]) {
  const body = concat(...payload);
  return concat(SIGNATURE, [versionCommand, family, body.length >> 8, body.length & 0xff], body);
}

const be16 = (n: number) => [n >> 8, n & 0xff];
const tlv = (type: number, value: number[]) => [type, ...be16(value.length), ...value];
/** 192.0.2.1:56324 → 198.51.100.7:443 as a v2 TCP4 block. */
const TCP4_BLOCK = [192, 0, 2, 1, 198, 51, 100, 7, ...be16(56324), ...be16(443)];
const TCP6_BLOCK = [
  ...[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
  ...[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7],
  ...be16(1),
  ...be16(65535),
];
const HTTP = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";

function addresses(src: string, sport: number, dst: string, dport: number) {
  return { sourceAddress: src, sourcePort: sport, destinationAddress: dst, destinationPort: dport };
}

interface Case {
  name: string;
  input: Uint8Array;
  /** The header, or the refusal's reason (and whether it is a missing header). */
  expect: ProxyHeader | { error: string; missing?: boolean };
}

const V1_LONGEST_UNKNOWN = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff " +
  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
const V1_LONGEST_TCP6 = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff " +
  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";

const CASES: Case[] = [
  {
    name: "v1 TCP4, the client's bytes after it",
    input: bytes(`PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n${HTTP}`),
    expect: {
      version: 1,
      local: false,
      addresses: addresses("192.0.2.1", 56324, "198.51.100.7", 443),
      length: 45,
    },
  },
  {
    name: "v1 TCP6 in any RFC 4291 form comes out in RFC 5952's",
    input: bytes("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::FFFF:198.51.100.7 0 65535\r\n"),
    expect: {
      version: 1,
      local: false,
      addresses: addresses("2001:db8::1", 0, "::ffff:198.51.100.7", 65535),
      length: 61,
    },
  },
  {
    name: "v1 TCP6, zero runs and no run",
    input: bytes("PROXY TCP6 :: 1:0:0:2:0:0:0:3 1 2\r\n"),
    expect: {
      version: 1,
      local: false,
      addresses: addresses("::", 1, "1:0:0:2::3", 2),
      length: 35,
    },
  },
  {
    name: "v1 TCP6, the longest line (104 bytes)",
    input: bytes(V1_LONGEST_TCP6),
    expect: {
      version: 1,
      local: false,
      addresses: addresses(
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        65535,
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        65535,
      ),
      length: 104,
    },
  },
  {
    name: "v1 UNKNOWN alone",
    input: bytes(`PROXY UNKNOWN\r\n${HTTP}`),
    expect: { version: 1, local: false, addresses: null, length: 15 },
  },
  {
    name: "v1 UNKNOWN with what follows it ignored, at the 107-byte bound",
    input: bytes(V1_LONGEST_UNKNOWN + HTTP),
    expect: { version: 1, local: false, addresses: null, length: V1_MAX_LENGTH },
  },
  {
    name: "v2 PROXY TCP4",
    input: concat(v2(0x21, 0x11, TCP4_BLOCK), HTTP),
    expect: {
      version: 2,
      local: false,
      addresses: addresses("192.0.2.1", 56324, "198.51.100.7", 443),
      length: 28,
    },
  },
  {
    name: "v2 PROXY TCP6, an IPv4-mapped destination",
    input: v2(0x21, 0x21, TCP6_BLOCK),
    expect: {
      version: 2,
      local: false,
      addresses: addresses("2001:db8::1", 1, "::ffff:198.51.100.7", 65535),
      length: 52,
    },
  },
  {
    name: "v2 PROXY TCP4 with TLVs skipped: NOOP, ALPN, SSL with sub-TLVs, AWS, an empty one",
    input: v2(
      0x21,
      0x11,
      TCP4_BLOCK,
      tlv(0x04, [0, 0, 0]),
      tlv(0x01, [...bytes("h2")]),
      tlv(0x20, [0x07, 0, 0, 0, 0, ...tlv(0x21, [...bytes("TLSv1.3")])]),
      tlv(0xea, [0x01, ...bytes("vpce-08d2bf15fac5001c9")]),
      tlv(0x05, []),
    ),
    expect: {
      version: 2,
      local: false,
      addresses: addresses("192.0.2.1", 56324, "198.51.100.7", 443),
      length: 16 + 12 + 6 + 5 + 18 + 26 + 3,
    },
  },
  {
    name: "v2 LOCAL (a health check): its block is skipped, whatever it holds",
    input: concat(v2(0x20, 0x77, [1, 2, 3, 4, 5]), HTTP),
    expect: { version: 2, addresses: null, local: true, length: 21 },
  },
  {
    name: "v2 LOCAL, empty",
    input: v2(0x20, 0x00),
    expect: { version: 2, addresses: null, local: true, length: 16 },
  },
  {
    name: "v2 PROXY UNSPEC: no address, the peer's stands",
    input: v2(0x21, 0x00, tlv(0x04, [])),
    expect: { version: 2, local: false, addresses: null, length: 19 },
  },
  {
    name: "v2 PROXY over a unix stream socket: no IP address",
    input: v2(0x21, 0x31, new Uint8Array(216)),
    expect: { version: 2, local: false, addresses: null, length: 232 },
  },
  {
    name: "v2 at the payload bound",
    input: v2(0x21, 0x11, TCP4_BLOCK, tlv(0x04, new Array(V2_MAX_PAYLOAD - 12 - 3).fill(0))),
    expect: {
      version: 2,
      local: false,
      addresses: addresses("192.0.2.1", 56324, "198.51.100.7", 443),
      length: 16 + V2_MAX_PAYLOAD,
    },
  },
  // Refusals.
  { name: "HTTP instead", input: bytes(HTTP), expect: { error: "no PROXY header", missing: true } },
  {
    name: "an almost-v1 prefix",
    input: bytes("PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
    expect: { error: "no PROXY header", missing: true },
  },
  {
    name: "an almost-v2 signature",
    input: concat(SIGNATURE.slice(0, 6), [0x0b], SIGNATURE.slice(7), [0x21, 0x11, 0, 12]),
    expect: { error: "no PROXY header", missing: true },
  },
  {
    name: "CRLF then HTTP: a v2 signature it is not",
    input: bytes("\r\n\r\nGET / HTTP/1.1\r\n"),
    expect: { error: "no PROXY header", missing: true },
  },
  {
    name: "v1 past 107 bytes",
    input: bytes(V1_LONGEST_UNKNOWN.replace("\r\n", "f\r\n")),
    expect: { error: "v1: no CRLF within 107 bytes" },
  },
  {
    name: "v1 with its CR as byte 107",
    input: bytes(V1_LONGEST_UNKNOWN.replace("\r\n", " \r\n")),
    expect: { error: "v1: no CRLF within 107 bytes" },
  },
  {
    name: "v1 ending in a bare LF",
    input: bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
    expect: { error: "v1: LF without CR" },
  },
  {
    name: "v1 with a bare CR",
    input: bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n"),
    expect: { error: "v1: CR without LF" },
  },
  {
    name: "v1 with a NUL",
    input: bytes("PROXY TCP4 1.2.3.4\x005.6.7.8 1 2\r\n"),
    expect: { error: "v1: byte 0x00 in the line" },
  },
  {
    name: "v1 with a byte above ASCII",
    input: bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xe9\r\n"),
    expect: { error: "v1: byte 0xe9 in the line" },
  },
  {
    name: "v1 with a tab",
    input: bytes("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"),
    expect: { error: "v1: byte 0x09 in the line" },
  },
  {
    name: "v1 protocol in lower case",
    input: bytes("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"),
    expect: { error: 'v1: protocol "tcp4" is not TCP4, TCP6 or UNKNOWN' },
  },
  {
    name: "v1 without a protocol",
    input: bytes("PROXY \r\n"),
    expect: { error: 'v1: protocol "" is not TCP4, TCP6 or UNKNOWN' },
  },
  {
    name: "v1 with two spaces",
    input: bytes("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"),
    expect: { error: "v1: 5 fields after TCP4, not 4" },
  },
  {
    name: "v1 with a trailing space",
    input: bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"),
    expect: { error: "v1: 5 fields after TCP4, not 4" },
  },
  {
    name: "v1 missing a port",
    input: bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
    expect: { error: "v1: 3 fields after TCP4, not 4" },
  },
  ...[
    "01.2.3.4",
    "256.2.3.4",
    "1.2.3",
    "1.2.3.4.5",
    "::1",
    "1.2.3.-4",
    "a.b.c.d",
    "",
  ].map((source): Case => ({
    name: `v1 TCP4 source ${JSON.stringify(source)}`,
    input: bytes(`PROXY TCP4 ${source} 5.6.7.8 1 2\r\n`),
    expect: { error: "v1: bad TCP4 source address" },
  })),
  ...[
    "1.2.3.4",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8::",
    "12345::1",
    "g::1",
    ":1::2",
    "1::2:",
    "1.2.3.4::1",
    "::1.2.3.04",
    "1:2:3:4:5:6:7:1.2.3.4",
  ].map((destination): Case => ({
    name: `v1 TCP6 destination ${JSON.stringify(destination)}`,
    input: bytes(`PROXY TCP6 ::1 ${destination} 1 2\r\n`),
    expect: { error: "v1: bad TCP6 destination address" },
  })),
  ...["65536", "01", "-1", "1e3", "99999", "0x10"].map((port): Case => ({
    name: `v1 source port ${port}`,
    input: bytes(`PROXY TCP4 1.2.3.4 5.6.7.8 ${port} 2\r\n`),
    expect: { error: "v1: bad source port" },
  })),
  {
    name: "v1 destination port",
    input: bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n"),
    expect: { error: "v1: bad destination port" },
  },
  { name: "v2 version 1", input: v2(0x11, 0x11, TCP4_BLOCK), expect: { error: "v2: version 1" } },
  { name: "v2 version 3", input: v2(0x31, 0x11, TCP4_BLOCK), expect: { error: "v2: version 3" } },
  {
    name: "v2 command 2",
    input: v2(0x22, 0x11, TCP4_BLOCK),
    expect: { error: "v2: unknown command 2" },
  },
  ...[0x12, 0x22, 0x32, 0x01, 0x10, 0x41, 0xff].map((family): Case => ({
    name: `v2 family and transport 0x${family.toString(16)}`,
    input: v2(0x21, family, new Uint8Array(216)),
    expect: {
      error: `v2: family and transport 0x${family.toString(16).padStart(2, "0")} are not TCP`,
    },
  })),
  {
    name: "v2 TCP4 block cut short",
    input: v2(0x21, 0x11, TCP4_BLOCK.slice(0, 11)),
    expect: { error: "v2: 11 bytes are too few for the addresses (12)" },
  },
  {
    name: "v2 TCP6 block cut short",
    input: v2(0x21, 0x21, TCP4_BLOCK),
    expect: { error: "v2: 12 bytes are too few for the addresses (36)" },
  },
  {
    name: "v2 past the payload bound, refused from its length alone",
    input: concat(SIGNATURE, [0x21, 0x11, ...be16(V2_MAX_PAYLOAD + 1)], TCP4_BLOCK),
    expect: { error: `v2: ${V2_MAX_PAYLOAD + 1} bytes of addresses and TLVs (at most 2048)` },
  },
  {
    name: "v2 with the largest length field",
    input: concat(SIGNATURE, [0x20, 0x00, 0xff, 0xff]),
    expect: { error: "v2: 65535 bytes of addresses and TLVs (at most 2048)" },
  },
  {
    name: "v2 TLV overrunning the header",
    input: v2(0x21, 0x11, TCP4_BLOCK, tlv(0x04, [0, 0]), [0x01, 0, 5, 1, 2]),
    expect: { error: "v2: TLV 0x01 of 5 bytes overruns the header" },
  },
  {
    name: "v2 stray bytes after the TLVs",
    input: v2(0x21, 0x11, TCP4_BLOCK, tlv(0x04, []), [0x04, 0]),
    expect: { error: "v2: 2 stray byte(s) after the TLVs" },
  },
];

for (const c of CASES) {
  Deno.test(`PROXY header: ${c.name}`, () => {
    const answer = parseEverySplit(c.input);
    const want = "error" in c.expect ? { missing: false, ...c.expect } : c.expect;
    assert.deepEqual(plain(answer), want);
  });
}

Deno.test("PROXY header: nothing yet, or a prefix of one, is a wait for more bytes", () => {
  const header = bytes("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n");
  for (let n = 0; n < header.length; n++) {
    assert.equal(parseProxyHeader(header, 0, n), undefined, `${n} bytes`);
  }
  const binary = v2(0x21, 0x11, TCP4_BLOCK);
  for (let n = 0; n < binary.length; n++) {
    assert.equal(parseProxyHeader(binary, 0, n), undefined, `${n} bytes`);
  }
});

/** xorshift32: the same "random" inputs on every run. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

/** What any answer must satisfy for `input` (fed whole). */
function checkBounds(input: Uint8Array, answer: Answer): void {
  if (answer === undefined) {
    // Waiting is only allowed below the bound of the version the bytes announce.
    const bound = input[0] === 0x50 ? V1_MAX_LENGTH : 16 + V2_MAX_PAYLOAD;
    assert.ok(input.length < bound, `waiting after ${input.length} bytes: ${printable(input)}`);
    return;
  }
  if (answer instanceof ProxyHeaderError) return;
  assert.ok(answer.length <= input.length, "never more bytes than given");
  assert.ok(answer.length <= (answer.version === 1 ? V1_MAX_LENGTH : 16 + V2_MAX_PAYLOAD));
  if (answer.addresses !== null) {
    for (const port of [answer.addresses.sourcePort, answer.addresses.destinationPort]) {
      assert.ok(Number.isInteger(port) && port >= 0 && port <= 65535);
    }
  }
}

Deno.test("PROXY header: mutated headers, split anywhere, answer the same and within bounds", () => {
  const random = prng(0x5eed);
  const seeds = CASES.map((c) => c.input);
  for (let round = 0; round < 1500; round++) {
    const input = seeds[Math.floor(random() * seeds.length)].slice();
    const edits = 1 + Math.floor(random() * 3);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(random() * input.length);
      // A byte of the grammar's own (digits, ':', '.', ' ', CR, LF) or any byte at all.
      const picks = [0x30 + Math.floor(random() * 10), 0x3a, 0x2e, 0x20, 0x0d, 0x0a, 0x00];
      input[at] = random() < 0.5 ? picks[Math.floor(random() * picks.length)] : random() * 256;
    }
    const whole = feed(input, []).answer;
    checkBounds(input, whole);
    const cut = 1 + Math.floor(random() * Math.max(1, input.length - 1));
    assert.deepEqual(plain(feed(input, [cut]).answer), plain(whole), printable(input));
  }
});

Deno.test("PROXY header: random bytes after either prefix never wait past the bound", () => {
  const random = prng(0xbeef);
  for (let round = 0; round < 500; round++) {
    const v1 = random() < 0.5;
    const size = v1 ? V1_MAX_LENGTH + 8 : 16 + V2_MAX_PAYLOAD + 8;
    const input = new Uint8Array(size);
    for (let i = 0; i < size; i++) {
      // Printable ASCII for v1 mostly, so the line runs long instead of failing at once.
      input[i] = v1 && random() < 0.98 ? 0x20 + Math.floor(random() * 0x5f) : random() * 256;
    }
    input.set(v1 ? bytes("PROXY ") : SIGNATURE);
    if (!v1) input[12] = 0x21;
    const answer = parseProxyHeader(input, 0, input.length);
    assert.notEqual(answer, undefined, "decided within the bound");
    checkBounds(input, answer);
  }
});
