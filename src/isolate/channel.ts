// Where the frames between the master and its children travel: a unix socket in a folder only
// this user can enter, rather than the child's stdin and stdout, which the app holds (a
// `Deno.stdout.write()` of its own would corrupt them). Each child is started with a token of
// its own; it connects before the app is imported, sends the token, and the connection is
// matched to it. A connection with an unknown or used token, or none in time, is closed.

import type { ByteSink, ByteSource } from "./frames.ts";
import { BODY_FRAME_MAX } from "./frames.ts";
import { isAlive } from "../process/liveness.ts";

/** A token is this many hex digits: 128 random bits. */
export const TOKEN_LENGTH = 32;

/** A connection that has not sent its token within this long is closed. */
const GREETING_MS = 10_000;

/** One child's end to be: the token to start it with, and the connection that will bring it. */
export interface Expected {
  token: string;
  /** The child's connection once it has said its token; null if it was forgotten first. */
  connection: Promise<Deno.UnixConn | null>;
  /** The child died before connecting: stop waiting (resolves `connection` with null). */
  forget(): void;
}

export class ChannelListener {
  /** The socket's path, for the children's command line and permissions. */
  readonly path: string;
  /** The private folder (mode 0700), removed by close(): the place for the children's entry. */
  readonly dir: string;
  readonly #listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>;
  readonly #waiting = new Map<string, (conn: Deno.UnixConn | null) => void>();
  #closed = false;

  /** Makes the private folder and listens in it. */
  constructor() {
    // makeTempDir creates it with mode 0700: only this user can reach the socket.
    this.dir = Deno.realPathSync(Deno.makeTempDirSync({ prefix: `${DIR_PREFIX}${Deno.pid}-` }));
    sweepStaleFolders(this.dir.slice(0, this.dir.lastIndexOf("/")));
    this.path = `${this.dir}/frames.sock`;
    this.#listener = Deno.listen({ transport: "unix", path: this.path });
    this.#accept();
  }

  expect(): Expected {
    const token = randomToken();
    let settle!: (conn: Deno.UnixConn | null) => void;
    const connection = new Promise<Deno.UnixConn | null>((resolve) => (settle = resolve));
    this.#waiting.set(token, settle);
    return {
      token,
      connection,
      forget: () => {
        if (this.#waiting.delete(token)) settle(null);
      },
    };
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) this.#greet(conn);
    } catch {
      // Closed.
    }
  }

  async #greet(conn: Deno.UnixConn): Promise<void> {
    const timer = setTimeout(() => closeQuietly(conn), GREETING_MS);
    let token: string | null = null;
    try {
      token = await readToken(conn);
    } catch {
      // Closed by the timer, or by the peer.
    } finally {
      clearTimeout(timer);
    }
    const settle = token === null ? undefined : this.#waiting.get(token);
    if (settle === undefined || this.#closed) {
      closeQuietly(conn);
      return;
    }
    // One use: a token seen once is never accepted again.
    this.#waiting.delete(token!);
    settle(conn);
  }

  /** Stops listening, lets every waiting child go, and removes the folder. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const settle of this.#waiting.values()) settle(null);
    this.#waiting.clear();
    closeQuietly(this.#listener);
    try {
      Deno.removeSync(this.dir, { recursive: true });
    } catch {
      // Removed already.
    }
  }
}

/** The private folders are `tsgi-isolate-<master's PID>-<random>`. */
const DIR_PREFIX = "tsgi-isolate-";

/** Removes the folders of masters that are gone (killed before they could remove them). */
function sweepStaleFolders(parent: string): void {
  try {
    for (const entry of Deno.readDirSync(parent)) {
      const pid = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(entry.name)?.[1];
      if (pid === undefined || isAlive(Number(pid))) continue;
      try {
        Deno.removeSync(`${parent}/${entry.name}`, { recursive: true });
      } catch {
        // Another user's, or removed meanwhile.
      }
    }
  } catch {
    // An unreadable temporary folder: nothing to sweep.
  }
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(TOKEN_LENGTH / 2));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Exactly TOKEN_LENGTH bytes as text; null when the connection ends first. */
async function readToken(conn: Deno.UnixConn): Promise<string | null> {
  const buf = new Uint8Array(TOKEN_LENGTH);
  let got = 0;
  while (got < TOKEN_LENGTH) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) return null;
    got += n;
  }
  return new TextDecoder().decode(buf);
}

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Closed already.
  }
}

/**
 * The master's side of one child's connection, usable before it exists: reads and writes
 * wait for it, and a child that never connected reads as an empty stream.
 */
export function connectionSource(connection: Promise<Deno.UnixConn | null>): ByteSource {
  let closed = false;
  // One buffer for every read, and a copy of what came: a child sending a byte at a time must
  // not make each byte hold a buffer of its own.
  const buf = new Uint8Array(BODY_FRAME_MAX + 5);
  return {
    async read() {
      const conn = await connection;
      if (conn === null || closed) return null;
      try {
        const n = await conn.read(buf);
        return n === null ? null : buf.slice(0, n);
      } catch (error) {
        // A child that dies with bytes of ours unread resets the connection: that is its end.
        if (error instanceof Deno.errors.ConnectionReset || closed) return null;
        throw error;
      }
    },
    async cancel() {
      closed = true;
      const conn = await connection;
      if (conn !== null) closeQuietly(conn);
    },
  };
}

/**
 * See connectionSource(). Closing only ends the child's input (a half-close): the reading side
 * may still be draining what the child sent, and cancelling that closes the connection.
 */
export function connectionSink(connection: Promise<Deno.UnixConn | null>): ByteSink {
  const ended = async () => {
    const conn = await connection;
    if (conn === null) return;
    try {
      await conn.closeWrite();
    } catch {
      // Closed already.
    }
  };
  return {
    async write(bytes) {
      const conn = await connection;
      if (conn === null) throw new Deno.errors.BrokenPipe("The child never connected");
      for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
    },
    close: ended,
    abort: ended,
  };
}
