// permessage-deflate's negotiation (src/http/websocket_deflate.ts) as a table of offers and the
// answer each gets under a policy; the field's grammar; and the decoder's RSV1 rules
// (src/http/websocket_frames.ts) with an inflater that records what it was given.

import assert from "node:assert/strict";
import {
  type DeflatePolicy,
  negotiateDeflate,
  parseExtensions,
} from "../../src/http/websocket_deflate.ts";
import { HttpError } from "../../src/http/errors.ts";
import {
  FrameDecoder,
  type Incoming,
  type MessageInflater,
  WebSocketProtocolError,
} from "../../src/http/websocket_frames.ts";

const NO_TAKEOVER: DeflatePolicy = { contextTakeover: "none", windowBits: 15 };
const CLIENT_TAKEOVER: DeflatePolicy = { contextTakeover: "client", windowBits: 15 };
const TAKEOVER: DeflatePolicy = { contextTakeover: "both", windowBits: 15 };
const TAKEOVER_12: DeflatePolicy = { contextTakeover: "both", windowBits: 12 };
const NONE = "server_no_context_takeover; client_no_context_takeover";

/** [what the client offers, the server's policy, the answer (null: none; 400: refused)]. */
const TABLE: [string, DeflatePolicy, string | null | 400][] = [
  // The server's policy without context takeover applies whatever the offer.
  ["permessage-deflate", NO_TAKEOVER, `permessage-deflate; ${NONE}`],
  ["permessage-deflate; client_max_window_bits", NO_TAKEOVER, `permessage-deflate; ${NONE}`],
  ["permessage-deflate", TAKEOVER, "permessage-deflate"],
  ["permessage-deflate", CLIENT_TAKEOVER, "permessage-deflate; server_no_context_takeover"],
  [
    "permessage-deflate; client_no_context_takeover",
    CLIENT_TAKEOVER,
    `permessage-deflate; ${NONE}`,
  ],
  ["PerMessage-Deflate", TAKEOVER, "permessage-deflate"],
  // What the client asks for is granted.
  [
    "permessage-deflate; server_no_context_takeover",
    TAKEOVER,
    "permessage-deflate; server_no_context_takeover",
  ],
  [
    "permessage-deflate; client_no_context_takeover",
    TAKEOVER,
    "permessage-deflate; client_no_context_takeover",
  ],
  [
    "permessage-deflate; server_max_window_bits=10",
    TAKEOVER,
    "permessage-deflate; server_max_window_bits=10",
  ],
  [
    'permessage-deflate; server_max_window_bits="10"',
    TAKEOVER,
    "permessage-deflate; server_max_window_bits=10",
  ],
  // client_max_window_bits is answered only when offered, at most the server's window.
  ["permessage-deflate; client_max_window_bits", TAKEOVER, "permessage-deflate"],
  [
    "permessage-deflate; client_max_window_bits",
    TAKEOVER_12,
    "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
  ],
  [
    "permessage-deflate; client_max_window_bits=10",
    TAKEOVER_12,
    "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10",
  ],
  ["permessage-deflate", TAKEOVER_12, "permessage-deflate; server_max_window_bits=12"],
  [
    "permessage-deflate; server_max_window_bits=14",
    TAKEOVER_12,
    "permessage-deflate; server_max_window_bits=12",
  ],
  // Declined offers: the next one is taken, or none.
  ["permessage-deflate; server_max_window_bits=8", TAKEOVER, null],
  [
    "permessage-deflate; server_max_window_bits=8, permessage-deflate",
    TAKEOVER,
    "permessage-deflate",
  ],
  [
    "permessage-deflate; x_unknown, permessage-deflate; client_no_context_takeover",
    TAKEOVER,
    "permessage-deflate; client_no_context_takeover",
  ],
  ["permessage-deflate; server_no_context_takeover; server_no_context_takeover", TAKEOVER, null],
  ["permessage-deflate; server_no_context_takeover=1", TAKEOVER, null],
  ["permessage-deflate; server_max_window_bits", TAKEOVER, null],
  ["permessage-deflate; server_max_window_bits=16", TAKEOVER, null],
  ["permessage-deflate; server_max_window_bits=7", TAKEOVER, null],
  ["permessage-deflate; server_max_window_bits=010", TAKEOVER, null],
  ["permessage-deflate; client_max_window_bits=0x9", TAKEOVER, null],
  ["x-webkit-deflate-frame", TAKEOVER, null],
  [
    "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits",
    TAKEOVER,
    "permessage-deflate",
  ],
  // Only the first acceptable offer is answered; whitespace and empty elements are allowed.
  [
    " , permessage-deflate ;  server_no_context_takeover ,permessage-deflate",
    TAKEOVER,
    "permessage-deflate; server_no_context_takeover",
  ],
  // A malformed field is a 400.
  ["permessage-deflate;", TAKEOVER, 400],
  ["permessage-deflate; =1", TAKEOVER, 400],
  ['permessage-deflate; server_max_window_bits="10', TAKEOVER, 400],
  ['permessage-deflate; server_max_window_bits="1 0"', TAKEOVER, 400],
  ["permessage-deflate server_no_context_takeover", TAKEOVER, 400],
  ["permessage-deflate; a=b=c", TAKEOVER, 400],
  ["perm(essage)", TAKEOVER, 400],
];

for (const [offer, policy, expected] of TABLE) {
  const terms = `takeover ${policy.contextTakeover}, ${policy.windowBits} bits`;
  Deno.test(`negotiateDeflate() answers ${JSON.stringify(offer)} (${terms})`, () => {
    const agreement = negotiateDeflate(offer, policy);
    if (expected === 400) {
      assert.ok(agreement instanceof HttpError, `expected a 400, got ${JSON.stringify(agreement)}`);
      assert.equal(agreement.status, 400);
      assert.match(agreement.message, /^Invalid Sec-WebSocket-Extensions: expected /);
    } else {
      assert.ok(!(agreement instanceof HttpError), String(agreement));
      assert.equal(agreement?.header ?? null, expected);
    }
  });
}

Deno.test("negotiateDeflate() gives the windows and takeovers both sides use", () => {
  const agreement = negotiateDeflate(
    "permessage-deflate; client_max_window_bits=9; server_no_context_takeover",
    TAKEOVER_12,
  );
  assert.deepEqual(agreement, {
    serverTakeover: false,
    clientTakeover: true,
    serverWindowBits: 12,
    clientWindowBits: 9,
    header:
      "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=9",
  });
  assert.equal(negotiateDeflate(undefined, TAKEOVER), null);
});

Deno.test("parseExtensions() keeps offers and parameters in order, quoted values unquoted", () => {
  assert.deepEqual(parseExtensions('a; x=1; y, b; z="q\\r"'), [
    { name: "a", params: [["x", "1"], ["y", null]] },
    { name: "b", params: [["z", "qr"]] },
  ]);
  assert.deepEqual(parseExtensions(""), []);
});

// --- the decoder's RSV1 rules ------------------------------------------------------------------

const MASK = [1, 2, 3, 4];

function frame(b0: number, payload: number[]): number[] {
  return [b0, 0x80 | payload.length, ...MASK, ...payload.map((b, i) => b ^ MASK[i & 3])];
}

/** Records each message it inflates and gives back its bytes reversed. */
class ReversingInflater implements MessageInflater {
  calls: number[][] = [];
  inflate(parts: Uint8Array[]): Uint8Array {
    const all = parts.flatMap((part) => [...part]);
    this.calls.push(all);
    return Uint8Array.from([...all].reverse());
  }
}

function decodeAll(bytes: number[], inflater: MessageInflater | null) {
  const decoder = new FrameDecoder(1 << 20, inflater);
  const out: Incoming[] = [];
  // Byte by byte: the RSV1 state must survive any cut.
  for (const b of bytes) out.push(...decoder.push(Uint8Array.of(b)));
  return { out, failure: decoder.failure };
}

Deno.test("FrameDecoder: RSV1 on a message's first frame sends its fragments to the inflater", () => {
  const inflater = new ReversingInflater();
  const bytes = [
    ...frame(0x41, [0x61, 0x62]), // text, RSV1, not final
    ...frame(0x89, [7]), // a ping between fragments: not inflated
    ...frame(0x80, [0x63]), // final continuation, RSV1 clear
    ...frame(0x82, [9, 8]), // an uncompressed binary message
  ];
  const { out, failure } = decodeAll(bytes, inflater);
  assert.equal(failure, null);
  assert.deepEqual(inflater.calls, [[0x61, 0x62, 0x63]]);
  assert.deepEqual(out, [
    { kind: "ping", data: Uint8Array.of(7) },
    { kind: "text", data: "cba" },
    { kind: "binary", data: Uint8Array.of(9, 8) },
  ]);
});

for (
  const [name, bytes, inflater] of [
    ["RSV1 with no extension agreed", frame(0xc1, [0x61]), null],
    ["RSV1 on a continuation frame", [...frame(0x41, [1]), ...frame(0xc0, [2])], "inflater"],
    ["RSV1 on a ping", frame(0xc9, []), "inflater"],
    ["RSV1 on a close", frame(0xc8, []), "inflater"],
    ["RSV2 with permessage-deflate", frame(0xa1, [0x61]), "inflater"],
    ["RSV3 with permessage-deflate", frame(0x91, [0x61]), "inflater"],
  ] as const
) {
  Deno.test(`FrameDecoder: ${name} is close 1002`, () => {
    const { failure } = decodeAll([...bytes], inflater === null ? null : new ReversingInflater());
    assert.ok(failure instanceof WebSocketProtocolError);
    assert.equal(failure.code, 1002);
  });
}

Deno.test("FrameDecoder: invalid UTF-8 is checked after inflating (1007)", () => {
  const inflater: MessageInflater = { inflate: () => Uint8Array.of(0xff) };
  const { failure } = decodeAll(frame(0xc1, [0x61]), inflater);
  assert.equal(failure?.code, 1007);
});
