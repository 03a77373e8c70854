// The command line: parses flags from the settings table, loads the app, serves it, and
// turns SIGINT/SIGTERM into a graceful stop. Usage errors are one line and exit status 2.

import { parseArgs } from "node:util";
import { AppLoadError, loadApp } from "./app_loader.ts";
import { WORKER_ENV } from "./control.ts";
import { type IsolatedApp, isolatedApp } from "./isolate.ts";
import { CHILD_ROLE, runChild } from "./isolate_child.ts";
import { ErrorLog } from "./log.ts";
import { runMaster } from "./master.ts";
import { serve, urlOf } from "./serve.ts";
import { type Config, ConfigError, defaultConfig, isUnixBind, SETTINGS } from "./settings.ts";
import { clearStaleSocket } from "./unix_socket.ts";
import { VERSION } from "./version.ts";
import { runWorker } from "./worker.ts";

const USAGE = "Usage: tsgi APP [options]   (APP: path/to/app.ts or path/to/app.ts:name)";

/** What the command line asked for. */
export type Command =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "serve"; app: string; config: Config };

/** Parses argv; throws ConfigError with a one-line message for anything wrong. */
export function parseCommandLine(args: string[]): Command {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {
    help: { type: "boolean", short: "h" },
    version: { type: "boolean" },
  };
  for (const s of SETTINGS) {
    options[s.flag] = { type: s.boolean ? "boolean" : "string", multiple: s.multiple === true };
    if (s.short) options[s.flag].short = s.short;
  }

  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new ConfigError(shortParseError(error));
  }
  const values = parsed.values as Record<string, string | string[] | boolean | undefined>;
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  if (parsed.positionals.length === 0) throw new ConfigError("missing APP (e.g. apps/hello.ts)");
  if (parsed.positionals.length > 1) {
    throw new ConfigError(
      `expected one APP, got ${parsed.positionals.length}: ${parsed.positionals.join(" ")}`,
    );
  }
  const config = defaultConfig() as unknown as Record<string, unknown>;
  for (const s of SETTINGS) {
    const raw = values[s.flag];
    if (raw === undefined) continue;
    if (typeof raw === "boolean") config[s.key] = raw;
    else {config[s.key] = Array.isArray(raw)
        ? raw.map((r) => s.parse(r, s.flag))
        : s.parse(raw as string, s.flag);}
  }
  return { kind: "serve", app: parsed.positionals[0], config: config as unknown as Config };
}

function shortParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // node's messages add advice about "--" that does not help here.
  return message.split(". To specify")[0].replace(/^Unknown option/, "unknown option")
    .replace(/^Option '(.*?)' argument missing/, "option '$1' needs a value");
}

/** The --help text, generated from the settings table. */
export function helpText(): string {
  const lines = [USAGE, "", "Options:"];
  for (const s of SETTINGS) {
    const flag = `${s.short ? `-${s.short}, ` : "    "}--${s.flag} ${s.metavar}`.trimEnd();
    const shown = s.boolean ? "" : ` (default: ${s.default === "" ? "none" : s.default})`;
    lines.push(`  ${flag}`, `        ${s.help}${shown}`);
  }
  lines.push("  -h, --help", "        Show this help and exit.");
  lines.push("      --version", "        Show the version and exit.");
  return lines.join("\n");
}

/** Runs the CLI; resolves with the exit status. */
export async function main(args: string[]): Promise<number> {
  let command: Command;
  try {
    command = parseCommandLine(args);
  } catch (error) {
    return usageError(error);
  }
  if (command.kind === "help") {
    console.log(helpText());
    return 0;
  }
  if (command.kind === "version") {
    console.log(`tsgi ${VERSION} (deno ${Deno.version.deno})`);
    return 0;
  }
  return await serveCommand(command.app, command.config, args);
}

function usageError(error: unknown): number {
  if (!(error instanceof ConfigError || error instanceof AppLoadError)) throw error;
  console.error(`tsgi: ${error.message}`);
  if (error instanceof ConfigError) console.error("Run 'tsgi --help' for the options.");
  return 2;
}

async function serveCommand(spec: string, config: Config, args: string[]): Promise<number> {
  // A pool: this process is its master, or one of its workers (docs/workers.md).
  if (Deno.env.get(WORKER_ENV.role) === "worker") return await runWorker(spec, config);
  // --isolate request: a child that serves one request for its master (docs/isolation.md).
  if (Deno.env.get(WORKER_ENV.role) === CHILD_ROLE) return await runChild(spec, config);
  if (config.workers > 0) return await runMaster(spec, config, args);
  const errorLog = new ErrorLog(config.logLevel);
  let loaded;
  try {
    loaded = await loadApp(spec, config);
  } catch (error) {
    return usageError(error);
  }
  // The app is loaded here too, so that a broken one is exit status 2 before any child runs.
  let isolated: IsolatedApp | null = null;
  if (config.isolate === "request") isolated = isolatedApp(spec, { ...config, errorLog, args });
  let handle;
  try {
    for (const bind of config.bind) if (isUnixBind(bind)) await clearStaleSocket(bind.path);
    handle = serve(isolated ?? loaded.app, { ...config, errorLog });
  } catch (error) {
    await isolated?.close();
    if (error instanceof ConfigError) return usageError(error);
    console.error(`tsgi: cannot listen: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
  const scheme = config.certfile === "" ? "http" : "https";
  for (const addr of handle.addrs) console.error(`Listening on ${urlOf(addr, scheme)}`);
  for (const path of handle.socketPaths) console.error(`Listening on unix:${path}`);
  errorLog.debug(`Serving ${loaded.kind} app ${loaded.spec}`);
  await stopOnSignals(handle.shutdown, errorLog);
  await isolated?.close();
  return 0;
}

/** Resolves once a signal has stopped the server; a second signal stops it at once. */
function stopOnSignals(shutdown: () => Promise<void>, log: ErrorLog): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: Deno.Signal) => () => {
      if (stopping) {
        log.warning(`${signal} again: stopping now`);
        Deno.exit(0);
      }
      stopping = true;
      log.info(`${signal}: stopping gracefully`);
      shutdown().then(resolve);
    };
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, onSignal(signal));
    }
  });
}
