// The open-file limit (RLIMIT_NOFILE): raised at start from the soft limit to the hard one, as
// Go's runtime does, and checked against what --max-connections and --max-pending may hold.
//
// Every connection, served or waiting, is a descriptor. systemd gives a service a soft limit of
// 1024 and a hard one of 524288; only the soft one is enforced, and a process may raise it up
// to the hard one itself. The deno CLI already does so when it starts (2.9.6 does), but not
// every way of running this code need; and a hard limit that is low (`ulimit -n 1024` in a
// shell sets both) cannot be raised at all, which is what the check is for. Deno exposes no
// rlimit API, so the calls go to libc through FFI; where that is missing (another OS, no
// --allow-ffi) the limit is neither raised nor checked, and one debug line says so.

import { type Libc, libcMissing, openLibc } from "./libc.ts";

/** Descriptors a server uses besides its connections: runtime, listeners, logs, a reserve. */
export const DESCRIPTOR_MARGIN = 32;

/** Linux's RLIMIT_NOFILE (x86_64 and arm64; the old MIPS and SPARC ports differ). */
const RLIMIT_NOFILE = 7;

/** The soft and hard limits; Infinity for RLIM_INFINITY. */
export interface FileLimit {
  soft: number;
  hard: number;
}

/** What raiseFileLimit() did. */
export interface RaiseOutcome {
  /** The limits before, or null when they could not be read. */
  before: FileLimit | null;
  /** The limits now, or null when they could not be read. */
  after: FileLimit | null;
  /** Why the soft limit could not be raised; "" when it was, or was at the hard limit already. */
  unraised: string;
}

/** struct rlimit is two rlim_t (unsigned 64-bit on 64-bit Linux): cur, then max. */
function getLimit(c: Libc): FileLimit | null {
  const buf = new BigUint64Array(2);
  if (c.getrlimit(RLIMIT_NOFILE, buf) !== 0) return null;
  return { soft: limitNumber(buf[0]), hard: limitNumber(buf[1]) };
}

function limitNumber(value: bigint): number {
  return value >= BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(value);
}

/** Raises the soft open-file limit to the hard limit. Never throws: `unraised` says why not. */
export function raiseFileLimit(): RaiseOutcome {
  const c = openLibc();
  if (c === null) return { before: null, after: null, unraised: libcMissing() };
  const before = getLimit(c);
  if (before === null) return { before, after: null, unraised: "getrlimit failed" };
  // Linux caps the hard limit at fs.nr_open, so it is never RLIM_INFINITY in practice.
  if (before.soft >= before.hard || before.hard === Infinity) {
    return { before, after: before, unraised: "" };
  }
  const ok = c.setrlimit(
    RLIMIT_NOFILE,
    new BigUint64Array([BigInt(before.hard), BigInt(before.hard)]),
  );
  const after = getLimit(c);
  return { before, after, unraised: ok === 0 ? "" : "setrlimit failed" };
}

/** How many connections a server may hold at once, as the admission flags allow. */
export interface DescriptorDemand {
  maxConnections: number;
  maxPending: number;
}

/** What the log needs: the levels this module speaks at. */
interface Log {
  debug(message: string): void;
  warning(message: string): void;
}

/**
 * Raises the limit, says so in one debug line, and warns in one line when the admission
 * flags allow more connections than the limit has room for: past it, accept() fails with
 * EMFILE long before --max-pending would answer 503.
 */
export function prepareFileLimit(demand: DescriptorDemand, log: Log): RaiseOutcome {
  const outcome = raiseFileLimit();
  const { before, after, unraised } = outcome;
  if (after === null) {
    log.debug(`Open-file limit neither raised nor checked: ${unraised}`);
  } else if (before !== null && after.soft > before.soft) {
    log.debug(`Open-file limit raised from ${before.soft} to ${after.soft}, the hard limit`);
  } else {
    const why = unraised === "" ? "" : `, not raised: ${unraised}`;
    log.debug(`Open-file limit is ${after.soft} (hard ${after.hard}${why})`);
  }
  const need = demand.maxConnections + demand.maxPending + DESCRIPTOR_MARGIN;
  if (after !== null && Number.isFinite(need) && need > after.soft) {
    log.warning(
      `--max-connections ${demand.maxConnections} + --max-pending ${demand.maxPending} need ` +
        `about ${need} file descriptors, but the open-file limit is ${after.soft}` +
        (unraised === "" ? "" : ` (not raised: ${unraised})`) +
        "; past it, new connections get 503 before --max-pending is reached: raise the limit " +
        "(ulimit -n, systemd LimitNOFILE=) or lower the flags",
    );
  }
  return outcome;
}
