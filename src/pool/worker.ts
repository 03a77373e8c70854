// A worker process of a master (src/master.ts): loads the app, listens with SO_REUSEPORT on
// the address its siblings share, serves, and reports to the master on its stdout. It stops
// gracefully on SIGTERM or when its stdin reaches end of file (the master is gone), and at
// once on SIGQUIT. SIGINT and SIGHUP are the master's to act on: a worker ignores them, so a
// Ctrl-C that reaches the whole process group still stops the pool in order.

import { AppLoadError, loadApp } from "../app/loader.ts";
import { type ControlMessage, encodeMessage, WORKER_ENV } from "./control.ts";
import { describeError, ErrorLog } from "../server/log.ts";
import { leaveReusePortGroup } from "./reuseport.ts";
import { serve, type ServerHandle } from "../server/serve.ts";
import { type BindAddress, parseTcpBind } from "../server/bind.ts";
import { ROLE_ENV } from "../process/role.ts";
import type { PoolConfig } from "./config.ts";
import type { App } from "../tsgi/types.ts";

const HEARTBEAT_MS = 1000;
/** After leaving the shared port: time for just-accepted connections to send a request, */
const FIRST_REQUEST_MS = 20;
/** then for keep-alive clients to be told "Connection: close" before idle ones are closed. */
const SETTLE_MS = 100;

/** Serves as a worker of a master; resolves with the exit status. */
export async function runWorker(spec: string, config: PoolConfig): Promise<number> {
  const env = takeWorkerEnv();
  const log = new ErrorLog(config.logLevel);
  const channel = new ControlChannel();
  let served = 0;
  channel.send({ t: "hb", n: 0 });
  const heartbeat = setInterval(() => channel.send({ t: "hb", n: served }), HEARTBEAT_MS);

  let handle: ServerHandle | null = null;
  let stopping = false;
  let stopped!: () => void;
  const done = new Promise<void>((resolve) => (stopped = resolve));
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`Worker ${env.id} stopping: ${why}`);
    // Not serving yet: nothing to finish.
    if (handle === null) Deno.exit(0);
    drain(handle).then(stopped);
  };
  channel.onClosed = () => stop("master gone (control channel closed)");
  const ignore = () => {};
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  Deno.addSignalListener("SIGQUIT", () => Deno.exit(0));
  Deno.addSignalListener("SIGINT", ignore);
  Deno.addSignalListener("SIGHUP", ignore);
  watchStdin(() => stop("master gone (stdin closed)"));

  let app: App;
  try {
    app = (await loadApp(spec, config)).app;
  } catch (error) {
    const message = error instanceof AppLoadError ? error.message : describeError(error);
    return fail(channel, log, message, 2);
  }
  let retiring = false;
  const counted: App = (environ, startResponse) => {
    served++;
    if (served === env.maxRequests && !retiring) {
      retiring = true;
      log.info(`Worker ${env.id} served ${served} requests: asking to be replaced`);
      channel.send({ t: "retiring" });
    }
    return app(environ, startResponse);
  };
  try {
    handle = serve(counted, {
      ...config,
      bind: env.binds ?? config.bind,
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
  channel.send({ t: "ready" });
  await done;
  clearInterval(heartbeat);
  return 0;
}

/**
 * Stops serving without failing a client. Out of the shared port first, at an instant when no
 * connection waits to be accepted (src/reuseport.ts). Then a moment for the connections just
 * accepted to deliver their first request: a draining server would close them as idle. Then
 * the engine drains — responses say "Connection: close", so keep-alive clients move to the
 * other workers cleanly — and a moment later the graceful shutdown closes what is idle.
 */
async function drain(handle: ServerHandle): Promise<void> {
  if (await leaveReusePortGroup(handle.addrs.map((a) => a.port))) {
    await delay(FIRST_REQUEST_MS);
    handle.server.engine.draining = true;
    await delay(SETTLE_MS);
  }
  await handle.shutdown();
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function fail(channel: ControlChannel, log: ErrorLog, message: string, code: number): number {
  log.error(`Worker failed to boot: ${message}`);
  channel.send({ t: "error", msg: message });
  return code;
}

interface WorkerEnv {
  id: string;
  maxRequests: number;
  binds: BindAddress[] | undefined;
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
  return {
    id,
    maxRequests: Number.isSafeInteger(maxRequests) && maxRequests > 0 ? maxRequests : 0,
    binds: binds ? binds.split(",").map((b) => parseTcpBind(b)) : undefined,
  };
}

/** Messages to the master on stdout, written whole and synchronously, so that they never
 * interleave with access log lines written to the same pipe. */
class ControlChannel {
  onClosed: () => void = () => {};
  #closed = false;

  send(message: ControlMessage): void {
    if (this.#closed) return;
    const bytes = encodeMessage(message);
    try {
      let done = 0;
      while (done < bytes.length) done += Deno.stdout.writeSync(bytes.subarray(done));
    } catch {
      // EPIPE: nobody reads any more.
      this.#closed = true;
      this.onClosed();
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
