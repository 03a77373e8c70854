// A spare descriptor, held for the moment the process runs out of them. When accept() fails
// with EMFILE or ENFILE, the connection stays queued in the kernel and every retry fails the
// same way: the server can neither serve it nor refuse it. Giving up the spare lets one queued
// connection be accepted and told 503; then the spare is taken back.

/** Where the spare points: it only has to be a descriptor. */
const SPARE_PATH = Deno.build.os === "windows" ? "NUL" : "/dev/null";

/** True for "out of descriptors" (Deno reports these as an Error with `code` "EMFILE"). */
export function isOutOfDescriptors(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "EMFILE" || code === "ENFILE";
}

/** One spare descriptor (on /dev/null) to give up when accept() has none. */
export class DescriptorReserve {
  #spare: Deno.FsFile | null = null;

  /** Whether the spare is held now. */
  get held(): boolean {
    return this.#spare !== null;
  }

  /** Opens the spare unless held; false when no descriptor could be had (or no permission). */
  take(): boolean {
    if (this.#spare !== null) return true;
    try {
      this.#spare = Deno.openSync(SPARE_PATH, { read: true });
      return true;
    } catch {
      return false;
    }
  }

  /** Closes the spare, which frees its descriptor at once; false when none was held. */
  release(): boolean {
    if (this.#spare === null) return false;
    try {
      this.#spare.close();
    } catch {
      // Closed already: the descriptor is free either way.
    }
    this.#spare = null;
    return true;
  }
}
