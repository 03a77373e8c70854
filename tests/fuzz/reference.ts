// A strict reference decoder for a stream of HTTP/1.1 requests, written apart from src/ and
// in another style: the parser is a byte-at-a-time state machine; this works on whole lines of
// a Latin-1 string with regular expressions, straight from RFC 9112 and the rules of
// docs/http.md. The fuzzer runs both on the same bytes: wherever the parser accepts a request,
// it must frame it exactly as this does — same head, same body, same bytes consumed.

/** The limits both decoders are run with (the parser's HeadLimits plus the body bound). */
export interface RefLimits {
  requestLine: number;
  fields: number;
  fieldSize: number;
  /** Largest head, counted from its first byte (blank lines before it included). */
  head: number;
  /** Largest decoded chunked body; 0 for none. */
  maxBody: number;
}

export const DEFAULT_REF_LIMITS: Readonly<RefLimits> = {
  requestLine: 8190,
  fields: 100,
  fieldSize: 8190,
  head: 65536,
  maxBody: 0,
};

/** One request as the reference frames it; offsets are into the decoded stream. */
export interface RefRequest {
  method: string;
  target: string;
  minor: number;
  /** Offset just past the head's blank line: where the body starts. */
  bodyStart: number;
  /** Offset just past the encoded body (the chunked body's final CRLF). */
  bodyEnd: number;
  /** The decoded body, Latin-1. */
  body: string;
  /** False when the stream ended (or failed) inside the body. */
  complete: boolean;
  keepAlive: boolean;
}

/** How the stream ended after the requests. */
export type RefEnd =
  | { kind: "ok" }
  | { kind: "error"; status: number; reason: string }
  | { kind: "incomplete"; where: "head" | "body" };

export interface RefResult {
  requests: RefRequest[];
  end: RefEnd;
  /** Offset of the first byte not consumed. */
  consumed: number;
}

// RFC 9110 §5.6.2: tchar; a method is a token (§9.1), "#" included.
const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
/** RFC 9110 §5.5: field-vchar / SP / HTAB, obs-text included; never CR, LF, NUL or DEL. */
const FIELD_VALUE = "[\\t\\x20-\\x7e\\x80-\\xff]*";
const REQUEST_LINE = new RegExp(`^(${TOKEN}) ([\\x21-\\x7e]+) (HTTP/[0-9]\\.[0-9])$`);
const FIELD_LINE = new RegExp(`^(${TOKEN}):(${FIELD_VALUE})$`);
/** RFC 9112 §2.3: every HTTP/1.x request line ends in its version; HTTP/0.9's does not. */
const VERSIONED = / HTTP\/[0-9]\.[0-9]$/;

// Host = uri-host [ ":" port ] (RFC 9110 §7.2), uri-host from RFC 3986 §3.2.2, rule by rule.
const H16 = "[0-9A-Fa-f]{1,4}";
const DEC_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]|[0-9])";
const IPV4 = `${DEC_OCTET}(?:\\.${DEC_OCTET}){3}`;
const LS32 = `(?:${H16}:${H16}|${IPV4})`;
const upTo = (n: number) => `(?:(?:${H16}:){0,${n}}${H16})?`;
const IPV6 = [
  `(?:${H16}:){6}${LS32}`,
  `::(?:${H16}:){5}${LS32}`,
  `${upTo(0)}::(?:${H16}:){4}${LS32}`,
  `${upTo(1)}::(?:${H16}:){3}${LS32}`,
  `${upTo(2)}::(?:${H16}:){2}${LS32}`,
  `${upTo(3)}::${H16}:${LS32}`,
  `${upTo(4)}::${LS32}`,
  `${upTo(5)}::${H16}`,
  `${upTo(6)}::`,
].join("|");
const IPVFUTURE = "[vV][0-9A-Fa-f]+\\.[A-Za-z0-9\\-._~!$&'()*+,;=:]+";
/** reg-name, less "," (docs/http.md: a joined list of Host lines), and never empty here. */
const REG_NAME = "(?:[A-Za-z0-9\\-._~!$&'()*+;=]|%[0-9A-Fa-f]{2})+";
const HOST = new RegExp(`^(?:\\[(?:${IPV6}|${IPVFUTURE})\\]|${REG_NAME})(?::([0-9]{1,5}))?$`);
/** chunk-size [ BWS ";" ext ] — the extension is any field text, bounded in total. */
const CHUNK_LINE = /^([0-9A-Fa-f]+)(?:([ \t]*);([\t\x20-\x7e\x80-\xff]*))?$/;
const MAX_LEADING_BLANK_LINES = 16;
const MAX_EXTENSION_BYTES = 4096;
const MAX_SIZE_DIGITS = 13;

class Refusal {
  constructor(readonly status: number, readonly reason: string) {}
}

function trimOws(s: string): string {
  return s.replace(/^[ \t]+|[ \t]+$/g, "");
}

interface Head {
  method: string;
  target: string;
  minor: number;
  keepAlive: boolean;
  framing: { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" };
}

/** Decodes `s` (one char per byte) as a sequence of requests. */
export function referenceDecode(s: string, limits: RefLimits = DEFAULT_REF_LIMITS): RefResult {
  const requests: RefRequest[] = [];
  let pos = 0;
  const result = (end: RefEnd): RefResult => ({ requests, end, consumed: pos });
  while (pos < s.length) {
    // RFC 9112 §2.2: a few empty lines before a request line are ignored, not an endless run.
    let start = pos;
    let blanks = 0;
    while (s.startsWith("\r\n", start)) {
      start += 2;
      if (++blanks > MAX_LEADING_BLANK_LINES) {
        return result({ kind: "error", status: 400, reason: "too many blank lines" });
      }
    }
    const headEnd = s.indexOf("\r\n\r\n", start);
    // Past the head limit nothing after it is looked at: what came before may still be wrong.
    const limitEnd = pos + limits.head;
    if (headEnd < 0 ? s.length > limitEnd : headEnd + 4 > limitEnd) {
      const before = referenceDecode(s.slice(pos, limitEnd), { ...limits, head: Infinity });
      if (before.end.kind === "error") return result(before.end);
      return result({ kind: "error", status: 431, reason: "head too large" });
    }
    if (headEnd < 0 || (s[start] === "\n")) {
      // An LF that is not part of a CRLF already condemns the stream; else wait for more.
      if (/(^|[^\r])\n/.test(s.slice(pos))) {
        return result({ kind: "error", status: 400, reason: "bare LF" });
      }
      // A whole request line is judged at once: too long, or without a version (HTTP/0.9).
      const lineEnd = s.indexOf("\r\n", start);
      if (lineEnd > start) {
        const refusal = checkRequestLine(s.slice(start, lineEnd), limits);
        if (refusal) {
          return result({ kind: "error", status: refusal.status, reason: refusal.reason });
        }
      }
      return result({ kind: "incomplete", where: "head" });
    }
    const head = parseHead(s.slice(start, headEnd), limits);
    if (head instanceof Refusal) {
      return result({ kind: "error", status: head.status, reason: head.reason });
    }
    const bodyStart = headEnd + 4;
    const request: RefRequest = {
      method: head.method,
      target: head.target,
      minor: head.minor,
      bodyStart,
      bodyEnd: bodyStart,
      body: "",
      complete: true,
      keepAlive: head.keepAlive,
    };
    requests.push(request);
    pos = bodyStart;
    if (head.framing.kind === "length") {
      const available = Math.min(head.framing.length, s.length - bodyStart);
      request.body = s.slice(bodyStart, bodyStart + available);
      request.bodyEnd = pos = bodyStart + available;
      if (available < head.framing.length) {
        request.complete = false;
        return result({ kind: "incomplete", where: "body" });
      }
    } else if (head.framing.kind === "chunked") {
      const chunked = decodeChunked(s, bodyStart, limits);
      request.body = chunked.body;
      request.bodyEnd = pos = chunked.end;
      if (chunked.outcome !== "done") {
        request.complete = false;
        if (chunked.outcome === "incomplete") return result({ kind: "incomplete", where: "body" });
        return result({ kind: "error", ...chunked.outcome });
      }
    }
  }
  return result({ kind: "ok" });
}

function checkRequestLine(line: string, limits: RefLimits): Refusal | undefined {
  if (line.length > limits.requestLine) return new Refusal(414, "request line");
  if (!VERSIONED.test(line)) return new Refusal(400, "no version");
  return undefined;
}

/** Host's value: empty, or a host (not empty) and a port no higher than 65535. */
function isHost(value: string): boolean {
  const host = HOST.exec(value);
  return host !== null && (host[1] === undefined || Number(host[1]) <= 65535);
}

/** A complete head without its final CRLF CRLF. */
function parseHead(text: string, limits: RefLimits): Head | Refusal {
  const lines = text.split("\r\n");
  // RFC 9112 §2.2: CRLF only. A bare LF or CR anywhere is refused (CVE-2019-16785 and kin).
  if (lines.some((line) => line.includes("\n"))) return new Refusal(400, "bare LF");
  const lineRefusal = checkRequestLine(lines[0], limits);
  if (lineRefusal) return lineRefusal;
  for (const line of lines.slice(1)) {
    if (line.length > limits.fieldSize) return new Refusal(431, "field size");
  }
  if (lines.length - 1 > limits.fields) return new Refusal(431, "field count");

  const requestLine = REQUEST_LINE.exec(lines[0]);
  if (!requestLine) {
    return /^\S+ \S+ HTTP\/[02-9]\.[0-9]$/.test(lines[0])
      ? new Refusal(505, "version")
      : new Refusal(400, "request line");
  }
  const [, method, target, version] = requestLine;
  const major = Number(version[5]);
  const minor = Number(version[7]);
  if (major !== 1 || minor > 1) return new Refusal(505, "version");
  if (method === "CONNECT") return new Refusal(501, "CONNECT");
  // RFC 9112 §3.2: origin-form, absolute-form; asterisk-form for OPTIONS alone.
  const formOk = target.startsWith("/") || /^https?:\/\//i.test(target) ||
    (target === "*" && method === "OPTIONS");
  if (!formOk) return new Refusal(400, "target form");
  // RFC 9110 §4.2.1, §4.2.4: an absolute-form authority is a host, no userinfo.
  const authority = /^https?:\/\/([^/?]*)/i.exec(target)?.[1];
  if (authority !== undefined && !isHost(authority)) return new Refusal(400, "target authority");

  const values = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const field = FIELD_LINE.exec(line);
    if (!field) return new Refusal(400, "field line");
    const name = field[1].toLowerCase();
    // X-A_B is parsed but dropped, so it can never pose as X-A-B (docs/tsgi.md).
    if (name.includes("_")) continue;
    values.set(name, [...(values.get(name) ?? []), trimOws(field[2])]);
  }
  const all = (name: string) => values.get(name) ?? [];

  const lengths = all("content-length");
  if (new Set(lengths).size > 1) return new Refusal(400, "conflicting Content-Length");
  if (all("content-type").length > 1) return new Refusal(400, "two Content-Type");
  if (all("expect").some((v) => v.toLowerCase() !== "100-continue")) {
    return new Refusal(417, "Expect");
  }
  const hosts = all("host");
  if (hosts.length > 1 || (hosts.length === 0 && minor === 1)) return new Refusal(400, "Host");
  if (hosts.length === 1 && hosts[0] !== "" && !isHost(hosts[0])) {
    return new Refusal(400, "Host syntax");
  }

  const options = all("connection").flatMap((v) => v.split(",")).map((o) =>
    trimOws(o).toLowerCase()
  );
  const keepAlive = !options.includes("close") && (minor === 1 || options.includes("keep-alive"));
  const head: Head = { method, target, minor, keepAlive, framing: { kind: "none" } };

  const codings = all("transfer-encoding");
  if (codings.length > 0) {
    if (lengths.length > 0) return new Refusal(400, "CL and TE");
    if (minor === 0) return new Refusal(400, "TE on HTTP/1.0");
    if (codings.length > 1) return new Refusal(400, "two TE");
    // Exactly one coding, and it is chunked: anything else is a smuggling vector (docs/http.md).
    let chunked = 0;
    for (const coding of codings[0].split(",").map((c) => trimOws(c).toLowerCase())) {
      if (coding === "") return new Refusal(400, "empty coding");
      if (coding !== "chunked") return new Refusal(501, "unsupported coding");
      chunked++;
    }
    if (chunked !== 1) return new Refusal(400, "chunked twice");
    head.framing = { kind: "chunked" };
    return head;
  }
  if (lengths.length > 0) {
    // RFC 9110 §8.6: 1*DIGIT, nothing else.
    if (!/^[0-9]+$/.test(lengths[0])) return new Refusal(400, "Content-Length syntax");
    const length = Number(lengths[0]);
    if (length > Number.MAX_SAFE_INTEGER) return new Refusal(413, "Content-Length size");
    if (length > 0) head.framing = { kind: "length", length };
  }
  return head;
}

interface Chunked {
  body: string;
  /** Offset past what was consumed. */
  end: number;
  outcome: "done" | "incomplete" | { status: number; reason: string };
}

/** RFC 9112 §7.1, line by line from `start`. */
function decodeChunked(s: string, start: number, limits: RefLimits): Chunked {
  let body = "";
  let at = start;
  let extensionBytes = 0;
  let total = 0;
  const stop = (outcome: Chunked["outcome"]): Chunked => ({ body, end: at, outcome });
  const refuse = (status: number, reason: string) => stop({ status, reason });
  for (;;) {
    const lineEnd = s.indexOf("\r\n", at);
    const line = s.slice(at, lineEnd < 0 ? s.length : lineEnd);
    const size = CHUNK_LINE.exec(line);
    // Only a prefix of a size line has come: the parser may refuse it already, or wait.
    if (lineEnd < 0) return stop("incomplete");
    if (!size) {
      const digits = /^[0-9A-Fa-f]*/.exec(line)![0].length;
      if (digits > MAX_SIZE_DIGITS) return refuse(413, "chunk size digits");
      return refuse(400, "size line");
    }
    if (size[1].length > MAX_SIZE_DIGITS) return refuse(413, "chunk size digits");
    // Counted as the parser bounds them: the whitespace after the first, and the extension.
    if (size[3] !== undefined) extensionBytes += Math.max(0, size[2].length - 1) + size[3].length;
    if (extensionBytes > MAX_EXTENSION_BYTES) return refuse(400, "extensions too long");
    const n = parseInt(size[1], 16);
    at = lineEnd + 2;
    if (n === 0) break;
    total += n;
    if (limits.maxBody > 0 && total > limits.maxBody) return refuse(413, "body too large");
    const data = s.slice(at, at + n);
    body += data;
    at += data.length;
    if (data.length < n) return stop("incomplete");
    const crlf = s.slice(at, at + 2);
    if (!"\r\n".startsWith(crlf)) return refuse(400, "data not followed by CRLF");
    if (crlf.length < 2) return stop("incomplete");
    at += 2;
  }
  // trailer-section = *( field-line CRLF ) CRLF
  for (let count = 0;; count++) {
    const lineEnd = s.indexOf("\r\n", at);
    if (lineEnd < 0) return stop("incomplete");
    const line = s.slice(at, lineEnd);
    at = lineEnd + 2;
    if (line === "") return stop("done");
    if (count + 1 > limits.fields) return refuse(431, "trailer count");
    if (!FIELD_LINE.test(line)) return refuse(400, "trailer line");
    if (line.length > limits.fieldSize) return refuse(431, "trailer size");
  }
}
