// The master's end of the control channel: a unix socket in a directory only this user can
// enter, where each worker connects, says which it is, and sends its messages as lines.

import { type ControlMessage, parseMessage } from "./control.ts";
import { relayLines } from "../process/line_relay.ts";

/** What the master is told: a message from worker `id`, or that its connection ended. */
export interface ControlHandlers {
  message(id: number, message: ControlMessage): void;
  /** The worker's connection ended (it exited, or closed it): nothing more will come. */
  closed(id: number): void;
}

export class ControlServer {
  readonly path: string;
  readonly #dir: string;
  readonly #listener: Deno.Listener;
  readonly #handlers: ControlHandlers;
  readonly #accepting: Promise<void>;
  /** The workers with a connection open. */
  readonly #speaking = new Set<number>();

  private constructor(dir: string, handlers: ControlHandlers) {
    this.#dir = dir;
    this.path = `${dir}/control`;
    this.#handlers = handlers;
    this.#listener = Deno.listen({ transport: "unix", path: this.path });
    this.#accepting = this.#accept();
  }

  /** Opens the socket in a fresh private directory (mode 0700 from makeTempDir). */
  static async open(handlers: ControlHandlers): Promise<ControlServer> {
    const dir = await Deno.makeTempDir({ prefix: "tsgi-master-" });
    return new ControlServer(dir, handlers);
  }

  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // Closed already.
    }
    await this.#accepting;
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) this.#serve(conn);
    } catch {
      // Closed.
    }
  }

  /** One worker's connection: its hello names it; lines that are not messages are dropped. */
  async #serve(conn: Deno.Conn): Promise<void> {
    let id = -1;
    const onLine = (line: string) => {
      const message = parseMessage(line);
      if (message === null) return;
      if (id < 0) {
        // One connection speaks for a worker: a second hello for it is not believed.
        if (message.t !== "hello" || this.#speaking.has(message.id)) return;
        id = message.id;
        this.#speaking.add(id);
      }
      this.#handlers.message(id, message);
    };
    // Its end is the connection's own: the worker's exit closes it.
    await relayLines(conn.readable, onLine);
    if (id >= 0) {
      this.#speaking.delete(id);
      this.#handlers.closed(id);
    }
  }
}
