// A worker process of a master (src/pool/master.ts): loads the app, serves the master's
// listening sockets (or, in the fallback, binds the addresses its siblings share with
// SO_REUSEPORT), and reports to the master on the control socket. It stops gracefully on
// SIGTERM or when its stdin reaches end of file (the master is gone), and at once on SIGQUIT.
// SIGINT and SIGHUP are the master's to act on: a worker ignores them, so a Ctrl-C that
// reaches the whole process group still stops the pool in order.

import { AppLoadError, loadApp } from "../app/loader.ts";
import { type ControlMessage, encodeMessage, WORKER_ENV } from "./control.ts";
import { describeError, ErrorLog } from "../server/log.ts";
import { type Leave, prepareLeave } from "../server/listener_close.ts";
import { type BoundServer, listen, type ServerHandle } from "../server/serve.ts";
import { setThrowawayPath } from "../server/adopt.ts";
import { dropSetUpGrants, NOT_NARROWED, takeNarrowedGrants } from "../process/least_privilege.ts";
import { parsePermissionFlags } from "../process/permission_set.ts";
import { type BindAddress, parseTcpBind } from "../server/bind.ts";
import { ROLE_ENV } from "../process/role.ts";
import type { PoolConfig } from "./config.ts";
import type { App } from "../tsgi/types.ts";

const HEARTBEAT_MS = 1000;
/** After leaving the shared port: time for just-accepted connections to send a request, */
const FIRST_REQUEST_MS = 20;
/** then for keep-alive clients to be told "Connection: close" before idle ones are closed. */
const SETTLE_MS = 100;

/** What a worker runs with: its pool's configuration and its own limits. */
export interface WorkerConfig extends PoolConfig {
  /** --max-memory: the RSS in bytes past which the worker asks to be replaced; 0: no limit. */
  maxMemory: number;
}

/** Serves as a worker of a master; resolves with the exit status. */
export async function runWorker(spec: string, config: WorkerConfig): Promise<number> {
  const env = takeWorkerEnv();
  const log = new ErrorLog(config.logLevel);
  const channel = await ControlChannel.connect(env.control, Number(env.id));
  let served = 0;
  let handle: ServerHandle | null = null;
  // Asked once, for the first reason that comes: the master starts a replacement, then stops
  // this worker gracefully.
  let retiring = false;
  const retire = (why: string) => {
    if (retiring) return;
    retiring = true;
    log.info(`Worker ${env.id} ${why}: asking to be replaced`);
    channel.send({ t: "retiring" });
  };
  const beat = () => {
    const rss = Deno.memoryUsage().rss;
    channel.send({ t: "hb", n: served, rss });
    // Serving only: a master ignores the request from a worker still booting.
    if (config.maxMemory > 0 && rss > config.maxMemory && handle !== null) {
      retire(`RSS ${mebibytes(rss)} is past --max-memory ${mebibytes(config.maxMemory)}`);
    }
  };
  beat();
  const heartbeat = setInterval(beat, HEARTBEAT_MS);

  let stopping = false;
  let leave: Leave | null = null;
  let stopped!: () => void;
  const done = new Promise<void>((resolve) => (stopped = resolve));
  // Asked by the master (SIGTERM), idle keep-alive connections are left for proxies to close
  // (Server.shutdown); with the master gone, nothing is kept waiting.
  const stop = (why: string, keepIdle = false) => {
    if (stopping) return;
    stopping = true;
    log.info(`Worker ${env.id} stopping: ${why}`);
    // Not serving yet: nothing to finish.
    if (handle === null) Deno.exit(0);
    drain(handle, leave, keepIdle).then(stopped);
  };
  channel.onClosed = () => stop("master gone (control channel closed)");
  const ignore = () => {};
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM", true));
  Deno.addSignalListener("SIGQUIT", () => Deno.exit(0));
  Deno.addSignalListener("SIGINT", ignore);
  Deno.addSignalListener("SIGHUP", ignore);
  watchStdin(() => stop("master gone (stdin closed)"));

  // Started narrowed (permission flags after APP): the set-up's grants go back before the
  // app is imported, so the app is loaded after the sockets are.
  const taken = takeNarrowedGrants(parsePermissionFlags(config.permissions));
  if (taken === "unnarrowed") {
    log.warning(`Worker ${env.id}: permission flags after APP are not applied: ${NOT_NARROWED}`);
  }
  const narrowed = typeof taken === "string" ? null : taken;
  if (narrowed?.adoptPath !== undefined) setThrowawayPath(narrowed.adoptPath);
  let app: App | null = null;
  if (narrowed === null) {
    try {
      app = (await loadApp(spec, config)).app;
    } catch (error) {
      return fail(channel, log, loadFailure(error), 2);
    }
  }
  let bound: BoundServer;
  try {
    bound = listen({
      ...config,
      bind: env.binds ?? config.bind,
      inherited: env.listenFds,
      errorLog: log,
      reusePort: true,
      multiprocess: true,
    });
  } catch (error) {
    return fail(
      channel,
      log,
      `cannot listen: ${error instanceof Error ? error.message : error}`,
      1,
    );
  }
  // With --reuse-port, the leave of the group is made ready while FFI may still be used (a
  // shared socket stays open in the master: closing ours leaves its queue to the others).
  leave = env.listenFds === undefined ? prepareLeave(bound.addrs.map((a) => a.port)) : null;
  if (narrowed !== null) {
    await dropSetUpGrants(narrowed, parsePermissionFlags(config.permissions));
    try {
      app = (await loadApp(spec, config)).app;
    } catch (error) {
      await bound.close();
      return fail(channel, log, loadFailure(error), 2);
    }
  }
  const loaded = app!;
  const counted: App = (environ, startResponse) => {
    served++;
    if (served === env.maxRequests) retire(`served ${served} requests`);
    return loaded(environ, startResponse);
  };
  handle = bound.start(counted);
  channel.send({ t: "ready" });
  await done;
  clearInterval(heartbeat);
  // The last count, for the master's log line of this worker's exit.
  channel.send({ t: "hb", n: served, rss: Deno.memoryUsage().rss });
  await channel.close();
  return 0;
}

/**
 * Stops serving without failing a client. Out of the shared port first, at an instant when no
 * connection waits to be accepted (src/server/listener_close.ts). Then a moment for the connections just
 * accepted to deliver their first request: a draining server would close them as idle. Then
 * the engine drains — responses say "Connection: close", so keep-alive clients move to the
 * other workers cleanly — and a moment later the graceful shutdown closes what is idle.
 */
async function drain(
  handle: ServerHandle,
  leave: Leave | null,
  keepIdle: boolean,
): Promise<void> {
  // Shared sockets (no leave): they stay open in the master, ours leave the queue to others.
  if (leave === null) return await handle.shutdown(undefined, keepIdle);
  if (await leave()) {
    await delay(FIRST_REQUEST_MS);
    handle.server.engine.draining = true;
    await delay(SETTLE_MS);
  }
  await handle.shutdown(undefined, keepIdle);
}

function loadFailure(error: unknown): string {
  return error instanceof AppLoadError ? error.message : describeError(error);
}

/** Bytes as the log shows a memory size: "212.4 MiB". */
function mebibytes(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function fail(
  channel: ControlChannel,
  log: ErrorLog,
  message: string,
  code: number,
): Promise<number> {
  log.error(`Worker failed to boot: ${message}`);
  channel.send({ t: "error", msg: message });
  await channel.close();
  return code;
}

interface WorkerEnv {
  id: string;
  maxRequests: number;
  /** The addresses to bind with SO_REUSEPORT (the fallback), or undefined. */
  binds: BindAddress[] | undefined;
  /** The master's listening sockets to serve, or undefined. */
  listenFds: number[] | undefined;
  /** The master's control socket. */
  control: string;
}

/** Reads the master's variables and removes them, so that processes the app starts do not
 * take themselves for workers. */
function takeWorkerEnv(): WorkerEnv {
  const take = (name: string) => {
    const value = Deno.env.get(name);
    Deno.env.delete(name);
    return value;
  };
  take(ROLE_ENV);
  const id = take(WORKER_ENV.id) ?? "?";
  const maxRequests = Number(take(WORKER_ENV.maxRequests) ?? "0");
  const binds = take(WORKER_ENV.binds);
  const fds = take(WORKER_ENV.listenFds);
  return {
    id,
    maxRequests: Number.isSafeInteger(maxRequests) && maxRequests > 0 ? maxRequests : 0,
    binds: binds ? binds.split(",").map((b) => parseTcpBind(b)) : undefined,
    listenFds: fds ? fds.split(",").map(Number) : undefined,
    control: take(WORKER_ENV.control) ?? "",
  };
}

/**
 * Messages to the master on its control socket, one line each, in order. Nothing the app
 * writes goes there, so nothing it prints can pass for a message.
 */
class ControlChannel {
  onClosed: () => void = () => {};
  readonly #conn: Deno.Conn | null;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(conn: Deno.Conn | null) {
    this.#conn = conn;
  }

  /** Connects and says which worker this is; without a socket, messages go nowhere. */
  static async connect(path: string, id: number): Promise<ControlChannel> {
    let conn: Deno.Conn | null = null;
    try {
      if (path !== "") conn = await Deno.connect({ transport: "unix", path });
    } catch {
      // The master is gone already: stdin's end will say so.
    }
    const channel = new ControlChannel(conn);
    channel.send({ t: "hello", id });
    return channel;
  }

  send(message: ControlMessage): void {
    const conn = this.#conn;
    if (this.#closed || conn === null) return;
    const bytes = encodeMessage(message);
    this.#writing = this.#writing.then(async () => {
      if (this.#closed) return;
      try {
        for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
      } catch {
        this.#closed = true;
        this.onClosed();
      }
    });
  }

  /** Waits for what was sent, then closes. */
  async close(): Promise<void> {
    await this.#writing;
    this.#closed = true;
    try {
      this.#conn?.close();
    } catch {
      // Closed by the master.
    }
  }
}

/** Calls `onEnd` when stdin, which the master holds open, reaches end of file. */
function watchStdin(onEnd: () => void): void {
  const buf = new Uint8Array(256);
  (async () => {
    try {
      while ((await Deno.stdin.read(buf)) !== null) {
        // The master sends nothing; bytes, if any, are ignored.
      }
    } catch {
      // A read error means the same as the end: the master is out of reach.
    }
    onEnd();
  })();
}
