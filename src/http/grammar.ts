// The HTTP/1.1 grammar as byte tables: one place where every character class the parser
// and the response writer check is defined, each named after its ABNF rule.

/** Characters as numbers, for byte comparisons without string building. */
export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;
export const COLON = 0x3a;
export const SEMICOLON = 0x3b;
export const QUESTION = 0x3f;
export const PERCENT = 0x25;

function table(predicate: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = predicate(c) ? 1 : 0;
  return t;
}

const isAlpha = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/**
 * tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|"
 *       / "~" / DIGIT / ALPHA                                         (RFC 9110 §5.6.2)
 * token = 1*tchar — methods and field names are tokens.
 */
export const TCHAR: Uint8Array = table((c) =>
  isAlpha(c) || isDigit(c) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c))
);

/**
 * field-vchar = VCHAR / obs-text; field-value = *field-content, with SP and HTAB inside
 * (RFC 9110 §5.5). Everything else — CR, LF, NUL and the other controls, DEL — is refused,
 * which is what keeps a header value from ending a line early (response splitting).
 */
export const FIELD_CHAR: Uint8Array = table((c) =>
  c === HTAB || c === SP || (c >= 0x21 && c <= 0x7e) || c >= 0x80
);

/**
 * The request-target's characters: VCHAR only (RFC 9112 §3.2 via RFC 3986). No space, no
 * controls, no obs-text: a raw byte above 0x7e in a URI is a client bug or an attack.
 */
export const TARGET_CHAR: Uint8Array = table((c) => c >= 0x21 && c <= 0x7e);

/**
 * reg-name = *( unreserved / pct-encoded / sub-delims ) (RFC 3986 §3.2.2), as Host's uri-host
 * spells a name (RFC 9110 §7.2); "%" (pct-encoded) is checked with its two HEXDIGs apart.
 * Less ",": legal in a reg-name, but no DNS name or address holds one, and it is what two Host
 * lines look like once an intermediary has joined them as a list (RFC 9110 §5.3).
 */
export const REG_NAME_CHAR: Uint8Array = table((c) =>
  isAlpha(c) || isDigit(c) || "-._~!$&'()*+;=".includes(String.fromCharCode(c))
);

/** HEXDIG, for chunk-size (RFC 9112 §7.1); the value is the digit's worth, or 255. */
export const HEX_VALUE: Uint8Array = (() => {
  const t = new Uint8Array(256).fill(255);
  for (let c = 0; c < 256; c++) {
    if (isDigit(c)) t[c] = c - 0x30;
    else if (c >= 0x41 && c <= 0x46) t[c] = c - 0x41 + 10;
    else if (c >= 0x61 && c <= 0x66) t[c] = c - 0x61 + 10;
  }
  return t;
})();

/**
 * chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (RFC 9112 §7.1.1):
 * tokens, quoted strings, whitespace and their punctuation. A bare CR or any other control
 * in an extension is refused (llhttp CVE-2021-22960, gunicorn 25.3).
 */
export const CHUNK_EXT_CHAR: Uint8Array = table((c) =>
  c === HTAB || c === SP || (c >= 0x21 && c <= 0x7e) || c >= 0x80
);

/** True when `s` is a token (RFC 9110 §5.6.2): non-empty and tchar only. */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || TCHAR[c] === 0) return false;
  }
  return true;
}

/** True when `s` holds only field-value characters (and no char above 0xff). */
export function isFieldValue(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || FIELD_CHAR[c] === 0) return false;
  }
  return true;
}

/**
 * Fields that describe the connection, not the message (RFC 9110 §7.6.1, PEP 3333's list):
 * the server's alone to send, lower-case.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
]);
