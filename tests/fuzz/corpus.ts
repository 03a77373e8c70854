// The raw-request corpus in tests/corpus/: exact bytes, one request stream per file.
//
// - valid/NAME.http: every request in it must be accepted and framed to the last byte;
//   valid/NAME.json beside it is its expected parse (tests/http/corpus_test.ts).
// - invalid/STATUS-NAME.http: refused with STATUS (after any valid requests before the bad one).
// - found/HASH.http (+ HASH.json: the limits it was found with and what went wrong): inputs the
//   fuzzer failed on, kept as regression cases and as seeds for the next run.

import { DEFAULT_REF_LIMITS, type RefLimits } from "./reference.ts";

export const CORPUS_DIR = new URL("../corpus/", import.meta.url);

export interface CorpusEntry {
  kind: "valid" | "invalid" | "found";
  /** The file name without its directory and extension. */
  name: string;
  data: Uint8Array;
  /** The status an invalid entry is refused with. */
  status?: number;
  /** The limits to replay with (found entries may carry small ones). */
  limits: RefLimits;
}

/** Found entries' sidecar. */
export interface FoundInfo {
  limits: RefLimits;
  message: string;
  seed?: number;
}

/** Every corpus entry, sorted by kind and name. */
export function loadCorpus(dir: URL = CORPUS_DIR): CorpusEntry[] {
  const entries: CorpusEntry[] = [];
  for (const kind of ["valid", "invalid", "found"] as const) {
    const sub = new URL(`${kind}/`, dir);
    let names: string[];
    try {
      names = [...Deno.readDirSync(sub)].filter((e) => e.isFile && e.name.endsWith(".http"))
        .map((e) => e.name.slice(0, -".http".length)).sort();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    for (const name of names) {
      const data = Deno.readFileSync(new URL(`${name}.http`, sub));
      const entry: CorpusEntry = { kind, name, data, limits: DEFAULT_REF_LIMITS };
      if (kind === "invalid") {
        const status = /^(\d{3})-/.exec(name);
        if (!status) throw new Error(`Cannot read the status of corpus entry "invalid/${name}"`);
        entry.status = Number(status[1]);
      }
      if (kind === "found") {
        try {
          const info = JSON.parse(
            Deno.readTextFileSync(new URL(`${name}.json`, sub)),
          ) as FoundInfo;
          entry.limits = info.limits;
        } catch {
          // No sidecar: the default limits.
        }
      }
      entries.push(entry);
    }
  }
  return entries;
}

/** Writes a failing input to found/ (named by its hash, so a repeat overwrites); returns the path. */
export function saveFound(data: Uint8Array, info: FoundInfo, dir: URL = CORPUS_DIR): string {
  const sub = new URL("found/", dir);
  Deno.mkdirSync(sub, { recursive: true });
  const name = fnv1a(data).toString(16).padStart(8, "0");
  const path = new URL(`${name}.http`, sub);
  Deno.writeFileSync(path, data);
  Deno.writeTextFileSync(new URL(`${name}.json`, sub), JSON.stringify(info, null, 2) + "\n");
  return path.pathname;
}

function fnv1a(data: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const byte of data) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash;
}

/** Bytes as a string, one char per byte. */
export function latin1(data: Uint8Array): string {
  let s = "";
  for (let i = 0; i < data.length; i += 4096) {
    s += String.fromCharCode(...data.subarray(i, i + 4096));
  }
  return s;
}

/** A string whose chars are all below 256 as bytes. */
export function toBytes(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
}

/** An input shown for a failure message: escaped, and cut when long. */
export function show(data: Uint8Array, max = 400): string {
  const text = JSON.stringify(latin1(data.subarray(0, max)));
  return data.length > max ? `${text}… (${data.length} bytes)` : text;
}
