// What workers print on stdout besides control messages (their access log, on "-"), copied to
// the master's stdout so that `tsgi … > access.log` still works.

const encoder = new TextEncoder();

/** Lines to this process's stdout, in the order given, as few writes as the pace allows. */
export class Passthrough {
  #pending = "";
  #written: Promise<void> = Promise.resolve();

  /** Queues one line (without its newline). */
  write(line: string): void {
    // Lines that come while a write is under way go together in the next one.
    if (this.#pending === "") this.#written = this.#written.then(() => this.#flush());
    this.#pending += line + "\n";
  }

  /** Resolves once every line queued so far is written (or lost with our stdout). */
  flushed(): Promise<void> {
    return this.#written;
  }

  async #flush(): Promise<void> {
    const bytes = encoder.encode(this.#pending);
    this.#pending = "";
    try {
      let done = 0;
      while (done < bytes.length) done += await Deno.stdout.write(bytes.subarray(done));
    } catch {
      // Our stdout is gone; the lines are lost, the pool keeps serving.
    }
  }
}
