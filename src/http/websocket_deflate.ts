// permessage-deflate's negotiation (RFC 7692 §5–7), pure: the client's Sec-WebSocket-Extensions
// parsed into offers, the first offer the server can accept under its policy, and the answer.

import { HttpError } from "./errors.ts";
import { isToken, TCHAR } from "./grammar.ts";

/**
 * Which side keeps its compression context between messages: none; the client only (the
 * server keeps an inflater per socket, ~20 KiB); both (a deflater too, ~150–220 KiB).
 */
export type ContextTakeover = "none" | "client" | "both";

/** The server's own terms, from its flags. */
export interface DeflatePolicy {
  contextTakeover: ContextTakeover;
  /** The most LZ77 window either side compresses with, as a power of two: 9–15. */
  windowBits: number;
}

/** What both sides agreed to, and the extension string the 101 answers with. */
export interface DeflateAgreement {
  /** The server keeps its compression context between the messages it sends. */
  serverTakeover: boolean;
  /** The client keeps its context: the server's inflater must keep its own. */
  clientTakeover: boolean;
  /** The window the server compresses with (9–15). */
  serverWindowBits: number;
  /** The most window the client compresses with (8–15). */
  clientWindowBits: number;
  /** The Sec-WebSocket-Extensions value of the 101 (and of socket.extensions). */
  header: string;
}

/** One extension of the field, by name, with its parameters in order (value null: none). */
export interface ExtensionOffer {
  name: string;
  params: [string, string | null][];
}

const EXTENSION_NAME = "permessage-deflate";
/** The smallest window zlib compresses raw deflate with (it turns 8 into 9: madler/zlib#171). */
export const MIN_DEFLATE_WINDOW_BITS = 9;
const MAX_WINDOW_BITS = 15;

/** RFC 7692 §7.1.2.1: 1*DIGIT, a decimal in 8–15 without leading zeros. */
const WINDOW_BITS_VALUE = /^(?:8|9|1[0-5])$/;

/**
 * Parses Sec-WebSocket-Extensions (RFC 6455 §9.1): `extension *("," extension)`, each
 * `token *(";" token ["=" (token / quoted-string)])` with optional whitespace around the
 * separators; empty list elements are skipped (RFC 9110 §5.6.1). A malformed field is a 400.
 */
export function parseExtensions(value: string): ExtensionOffer[] | HttpError {
  const scanner = new Scanner(value);
  const offers: ExtensionOffer[] = [];
  try {
    while (scanner.skipSeparators()) {
      const offer: ExtensionOffer = { name: scanner.token(), params: [] };
      scanner.ows();
      while (scanner.take(";")) {
        scanner.ows();
        const name = scanner.token();
        scanner.ows();
        let paramValue: string | null = null;
        if (scanner.take("=")) {
          scanner.ows();
          paramValue = scanner.tokenOrQuoted();
          scanner.ows();
        }
        offer.params.push([name, paramValue]);
      }
      if (!scanner.atEnd() && !scanner.take(",")) scanner.fail("a ',' or ';'");
      offers.push(offer);
    }
  } catch (error) {
    if (error instanceof SyntaxError) {
      return new HttpError(400, `Invalid Sec-WebSocket-Extensions: ${error.message}`);
    }
    throw error;
  }
  return offers;
}

/**
 * The first permessage-deflate offer the server accepts under `policy`, or null for none (the
 * socket then speaks without compression); a malformed field is its HttpError (400).
 */
export function negotiateDeflate(
  field: string | undefined,
  policy: DeflatePolicy,
): DeflateAgreement | null | HttpError {
  if (field === undefined) return null;
  const offers = parseExtensions(field);
  if (offers instanceof HttpError) return offers;
  for (const offer of offers) {
    if (offer.name.toLowerCase() !== EXTENSION_NAME) continue;
    const terms = offerTerms(offer.params);
    if (terms !== null) {
      const agreement = accept(terms, policy);
      if (agreement !== null) return agreement;
    }
  }
  return null;
}

/** An offer's parameters, checked (§7.1). */
interface OfferTerms {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  /** Absent: undefined. */
  serverMaxWindowBits?: number;
  /** Absent: undefined; present without a value: true (the client accepts any). */
  clientMaxWindowBits?: number | true;
}

/**
 * §5: an offer with a parameter not defined for it, an invalid value, or a parameter twice is
 * declined (null): the server goes on to the next offer.
 */
function offerTerms(params: [string, string | null][]): OfferTerms | null {
  const terms: OfferTerms = { serverNoContextTakeover: false, clientNoContextTakeover: false };
  const seen = new Set<string>();
  for (const [rawName, value] of params) {
    const name = rawName.toLowerCase();
    if (seen.has(name)) return null;
    seen.add(name);
    switch (name) {
      case "server_no_context_takeover":
      case "client_no_context_takeover":
        if (value !== null) return null;
        if (name === "server_no_context_takeover") terms.serverNoContextTakeover = true;
        else terms.clientNoContextTakeover = true;
        break;
      case "server_max_window_bits":
        if (value === null || !WINDOW_BITS_VALUE.test(value)) return null;
        terms.serverMaxWindowBits = Number(value);
        break;
      case "client_max_window_bits":
        if (value !== null && !WINDOW_BITS_VALUE.test(value)) return null;
        terms.clientMaxWindowBits = value === null ? true : Number(value);
        break;
      default:
        return null;
    }
  }
  return terms;
}

/** The agreement for valid `terms`, or null when the server cannot keep them. */
function accept(terms: OfferTerms, policy: DeflatePolicy): DeflateAgreement | null {
  // zlib compresses raw deflate with no window under 9 bits: a client that asks for 8 is
  // declined rather than promised what the server could not keep (§7.1.2.1).
  const asked = terms.serverMaxWindowBits;
  if (asked !== undefined && asked < MIN_DEFLATE_WINDOW_BITS) return null;
  const serverWindowBits = Math.min(asked ?? MAX_WINDOW_BITS, policy.windowBits);
  // §7.1.2.2: client_max_window_bits may be answered only when offered.
  const offeredClient = terms.clientMaxWindowBits;
  const clientWindowBits = offeredClient === undefined
    ? MAX_WINDOW_BITS
    : Math.min(offeredClient === true ? MAX_WINDOW_BITS : offeredClient, policy.windowBits);
  const serverTakeover = policy.contextTakeover === "both" && !terms.serverNoContextTakeover;
  const clientTakeover = policy.contextTakeover !== "none" && !terms.clientNoContextTakeover;
  // §7.1.1: a server may ask for no context takeover either way, offered or not.
  const params = [EXTENSION_NAME];
  if (!serverTakeover) params.push("server_no_context_takeover");
  if (!clientTakeover) params.push("client_no_context_takeover");
  if (asked !== undefined || serverWindowBits < MAX_WINDOW_BITS) {
    params.push(`server_max_window_bits=${serverWindowBits}`);
  }
  if (offeredClient !== undefined && clientWindowBits < MAX_WINDOW_BITS) {
    params.push(`client_max_window_bits=${clientWindowBits}`);
  }
  return {
    serverTakeover,
    clientTakeover,
    serverWindowBits,
    clientWindowBits,
    header: params.join("; "),
  };
}

/** Reads the field left to right; a violation throws SyntaxError with what was expected. */
class Scanner {
  readonly #text: string;
  #at = 0;

  constructor(text: string) {
    this.#text = text;
  }

  atEnd(): boolean {
    return this.#at >= this.#text.length;
  }

  /** Skips whitespace and empty list elements; false at the end. */
  skipSeparators(): boolean {
    while (!this.atEnd() && /[ \t,]/.test(this.#text[this.#at])) this.#at++;
    return !this.atEnd();
  }

  ows(): void {
    while (!this.atEnd() && (this.#text[this.#at] === " " || this.#text[this.#at] === "\t")) {
      this.#at++;
    }
  }

  take(char: string): boolean {
    if (this.#text[this.#at] !== char) return false;
    this.#at++;
    return true;
  }

  token(): string {
    const start = this.#at;
    while (TCHAR[this.#text.charCodeAt(this.#at)] === 1) this.#at++;
    if (this.#at === start) this.fail("a token");
    return this.#text.slice(start, this.#at);
  }

  /** A token, or a quoted-string unescaped (§9.1: its content must then be a token too). */
  tokenOrQuoted(): string {
    if (!this.take('"')) return this.token();
    let value = "";
    while (!this.atEnd() && this.#text[this.#at] !== '"') {
      if (this.#text[this.#at] === "\\") this.#at++;
      if (this.atEnd()) break;
      value += this.#text[this.#at++];
    }
    if (!this.take('"')) this.fail("a closing '\"'");
    if (!isToken(value)) this.fail("a token inside the quotes");
    return value;
  }

  fail(expected: string): never {
    const where = this.atEnd() ? "the end" : `"${this.#text[this.#at]}" at ${this.#at}`;
    throw new SyntaxError(`expected ${expected}, found ${where}`);
  }
}
