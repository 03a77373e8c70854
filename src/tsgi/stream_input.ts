// `tsgi.input` over a ReadableStream (a Request's body), for TSGI apps served by a fetch
// handler: the same read/readline/readlines contract as the server's own input (input.ts).

import { ByteInput } from "./byte_input.ts";

/**
 * The Input view of a byte stream; reads only as far as asked, never the whole body at once
 * unless `read()` is called without a size.
 */
export class StreamInput extends ByteInput {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #done = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    super();
    this.#reader = stream.getReader();
  }

  protected async next(max: number): Promise<Uint8Array | null> {
    while (!this.#done) {
      const { done, value } = await this.#reader.read();
      if (done) this.#done = true;
      else if (value.length > max) {
        this.keep(value.subarray(max));
        return value.subarray(0, max);
      } else if (value.length > 0) return value;
    }
    return null;
  }
}
