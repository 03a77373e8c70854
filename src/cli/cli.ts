// The command line: parses flags from the settings table, merges them over a config file
// (src/config_file.ts), loads the app, serves it, and turns SIGINT/SIGTERM into a graceful
// stop. Usage errors are one line and exit status 2.

import { relative, sep as SEP } from "node:path";
import { parseArgs } from "node:util";
import { AppLoadError, loadApp, type LoadedApp, parseAppSpec, preloadApp } from "../app/loader.ts";
import { findDenoJsonConfig, formatConfig, loadConfigFile } from "./config_file.ts";
import { permissionFlagsAsSetting } from "./permissions.ts";
import { type IsolatedApp, isolatedApp } from "../isolate/executor.ts";
import { BootError } from "../isolate/child_pool.ts";
import { runChild } from "../isolate/child.ts";
import { currentRole } from "../process/role.ts";
import { missingPermissionsLine } from "./permissions_needed.ts";
import { closest } from "./suggest.ts";
import { useProjectConfig } from "./project_config.ts";
import { isUnixBind } from "../server/bind.ts";
import { socketsPassed, takeSystemdSockets } from "../server/systemd.ts";
import { setThrowawayPath } from "../server/adopt.ts";
import { ErrorLog } from "../server/log.ts";
import { runMaster } from "../pool/master.ts";
import { prepareLeave } from "../server/listener_close.ts";
import { setEntryModule } from "../process/reexec.ts";
import { watchedFolder, watchSources } from "./reload.ts";
import { type BoundServer, listen, loadTls, urlOf } from "../server/serve.ts";
import { narrowThisProcess } from "./narrow.ts";
import {
  dropSetUpGrants,
  exposedKeyLine,
  NOT_NARROWED,
  serverSetUpGrants,
  type SetUpGrants,
  startedNarrowed,
  takeNarrowedGrants,
  widenedGrantsLine,
} from "../process/least_privilege.ts";
import { parsePermissionFlags, type PermissionFlag } from "../process/permission_set.ts";
import { absoluteAppPath } from "../process/app_location.ts";
import {
  assignSetting,
  type Config,
  ConfigError,
  defaultConfig,
  formatDefault,
  SECTIONS,
  SETTINGS,
} from "./settings.ts";
import { clearStaleSocket } from "../server/unix_socket.ts";
import { VERSION } from "./version.ts";
import { runWorker } from "../pool/worker.ts";

const USAGE = "Usage: tsgi APP [options]   (APP: path/to/app.ts or path/to/app.ts:name)";

/** The flags of the command itself, beside the settings: they have no config-file key. */
const COMMAND_FLAGS: readonly {
  flag: string;
  short?: string;
  metavar: string;
  help: string;
}[] = [
  {
    flag: "config",
    short: "c",
    metavar: "FILE",
    help: "Settings from a file: a module whose default export is an object keyed by the " +
      "settings' config keys (plus app), a JSON file, or a deno.json's \"tsgi\" section. " +
      'Flags override it. Without --config, a "tsgi" section in ./deno.json is used.',
  },
  {
    flag: "print-config",
    metavar: "",
    help: "Print the merged settings (defaults, file, flags) as JSON and exit.",
  },
  {
    flag: "check-config",
    metavar: "",
    help: "Load the settings and the app, then exit: 0 if both are good, 2 with the reason.",
  },
  { flag: "help", short: "h", metavar: "", help: "Show this help and exit." },
  { flag: "version", metavar: "", help: "Show the version and exit." },
];

/** What the command line says, before any config file is read. */
export interface CommandLine {
  action: "help" | "version" | "serve" | "print-config" | "check-config";
  /** The APP argument, if given. */
  app?: string;
  /** --config FILE, if given. */
  configFile?: string;
  /** The settings given as flags, validated. */
  flags: Partial<Config>;
}

/** What to do, with every setting resolved: defaults, then the config file, then flags. */
export interface Command {
  action: "serve" | "print-config" | "check-config";
  /** The app spec: APP, the built-in app, or the config file's `app`. */
  app?: string;
  config: Config;
  /** The config file the settings came from, if any. */
  source?: string;
}

/** Parses argv; throws ConfigError with a one-line message for anything wrong. */
export function parseCommandLine(args: string[]): CommandLine {
  // Deno's --allow-*/--deny-* flags: their value is optional, which parseArgs cannot take.
  args = permissionFlagsAsSetting(args);
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const c of COMMAND_FLAGS) {
    options[c.flag] = { type: c.metavar === "" ? "boolean" : "string" };
    if (c.short) options[c.flag].short = c.short;
  }
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
  if (values.help) return { action: "help", flags: {} };
  if (values.version) return { action: "version", flags: {} };
  if (values["print-config"] && values["check-config"]) {
    throw new ConfigError("--print-config and --check-config: give one or the other");
  }
  if (parsed.positionals.length > 1) {
    throw new ConfigError(
      `expected one APP, got ${parsed.positionals.length}: ${parsed.positionals.join(" ")}`,
    );
  }
  const flags: Partial<Config> = {};
  for (const s of SETTINGS) {
    const raw = values[s.flag];
    if (raw === undefined) continue;
    const raws = typeof raw === "boolean" ? [String(raw)] : Array.isArray(raw) ? raw : [raw];
    assignSetting(flags, s, s.parse(raws, s.flag));
  }
  return {
    action: values["print-config"]
      ? "print-config"
      : values["check-config"]
      ? "check-config"
      : "serve",
    app: parsed.positionals[0],
    configFile: values.config as string | undefined,
    flags,
  };
}

/**
 * Merges the defaults, the config file (--config FILE, else a "tsgi" section in ./deno.json)
 * and the flags, in that order. `builtIn` is the spec of an app imported ahead (a compiled
 * binary): it is the app, and APP may only repeat it.
 */
export async function resolveCommand(line: CommandLine, builtIn?: string): Promise<Command> {
  const source = line.configFile ?? findDenoJsonConfig() ?? undefined;
  const file = source === undefined ? undefined : await loadConfigFile(source);
  if (builtIn !== undefined && line.app !== undefined && line.app !== builtIn) {
    throw new ConfigError(
      `this program serves its built-in app "${builtIn}": got APP "${line.app}"`,
    );
  }
  const config: Config = { ...defaultConfig(), ...file?.values, ...line.flags };
  return {
    action: line.action as Command["action"],
    app: builtIn ?? line.app ?? file?.app,
    config,
    source,
  };
}

function shortParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // node's messages add advice about "--" that does not help here.
  const short = message.split(". To specify")[0].replace(/^Unknown option/, "unknown option")
    .replace(/^Option '(.*?)' argument missing/, "option '$1' needs a value");
  const unknown = /^unknown option '(--?[^'=]+)/.exec(short)?.[1];
  if (unknown === undefined) return short;
  const flags = [...SETTINGS.map((s) => s.flag), ...COMMAND_FLAGS.map((c) => c.flag)];
  const guess = closest(unknown, flags);
  return guess === undefined ? short : `${short}: did you mean --${guess}?`;
}

/** The --help text, generated from the settings table and the command's own flags. */
export function helpText(): string {
  const flagLine = (short: string | undefined, flag: string, metavar: string) =>
    `${short ? `-${short}, ` : "    "}--${flag} ${metavar}`.trimEnd();
  const lines = [USAGE, "", "Options (in a config file, the key in brackets):"];
  for (const [section, title] of Object.entries(SECTIONS)) {
    lines.push("", `${title}:`);
    for (const s of SETTINGS) {
      if (s.section !== section) continue;
      const value = formatDefault(s);
      const shown = s.boolean ? "" : ` (default: ${value === "" ? "none" : value})`;
      lines.push(
        `  ${flagLine(s.short, s.flag, s.metavar)}  [${s.key}]`,
        `        ${s.help}${shown}`,
      );
    }
  }
  lines.push("", "Command:");
  for (const c of COMMAND_FLAGS) {
    lines.push(`  ${flagLine(c.short, c.flag, c.metavar)}`, `        ${c.help}`);
  }
  return lines.join("\n");
}

/** What a program that embeds the CLI gives it besides argv. */
export interface MainOptions {
  /**
   * The app, imported ahead by the program (scripts/compile.ts generates such a program):
   * APP is then optional, and workers and isolated children use this module too.
   */
  app?: { spec: string; module: object };
  /** This program's entry module, run again for workers when not compiled (src/reexec.ts). */
  entry?: string | URL;
}

/**
 * Runs the CLI; resolves with the exit status.
 *
 * ```ts
 * import * as hello from "../../apps/hello.ts";
 * Deno.exit(await main(Deno.args, { app: { spec: "apps/hello.ts", module: hello } }));
 * ```
 */
export async function main(args: string[], options: MainOptions = {}): Promise<number> {
  // A process started narrowed has only what it needs; its first self checked the rest.
  const missing = startedNarrowed() ? "" : missingPermissionsLine(false);
  if (missing !== "") {
    console.error(`tsgi: ${missing}`);
    return 2;
  }
  // In a project folder, its deno.json (this returns only where that is in effect already).
  if (currentRole() === "main") {
    const unused = useProjectConfig();
    if (unused !== "") console.error(`tsgi: ${unused}`);
  }
  if (options.entry !== undefined) setEntryModule(options.entry);
  if (options.app) preloadApp(options.app.spec, options.app.module);
  let command: Command;
  let line: CommandLine;
  try {
    line = parseCommandLine(args);
    if (line.action === "help") {
      console.log(helpText());
      return 0;
    }
    if (line.action === "version") {
      console.log(`tsgi ${VERSION} (deno ${Deno.version.deno})`);
      return 0;
    }
    command = await resolveCommand(line, options.app?.spec);
  } catch (error) {
    return usageError(error);
  }
  if (command.action === "print-config") {
    console.log(formatConfig(command.app, command.config));
    return 0;
  }
  if (command.app === undefined) {
    return usageError(new ConfigError("missing APP (e.g. apps/hello.ts)"));
  }
  if (command.action === "check-config") return await checkConfig(command.app, command);
  return await serveCommand(
    command.app,
    command.config,
    args,
    options.app !== undefined,
    command.source,
  );
}

function usageError(error: unknown, logLevel = "info"): number {
  if (!(error instanceof ConfigError || error instanceof AppLoadError)) throw error;
  console.error(`tsgi: ${error.message}`);
  if (error instanceof ConfigError) console.error("Run 'tsgi --help' for the options.");
  // The whole stack of what failed in the app's modules, when asked for.
  if (error instanceof AppLoadError && error.detail !== "" && logLevel === "debug") {
    console.error(error.detail);
  }
  return 2;
}

/** --check-config: the settings are valid already; load the app and the certificate. */
async function checkConfig(spec: string, command: Command): Promise<number> {
  let kind;
  try {
    // Isolated, the app is checked the way it will be served: in a child, never imported here.
    kind = command.config.isolate === "request"
      ? await checkInChild(spec, command.config)
      : (await loadApp(spec, command.config)).kind;
    loadTls(command.config);
  } catch (error) {
    if (!(error instanceof ConfigError || error instanceof AppLoadError)) throw error;
    console.error(`tsgi: ${error.message}`);
    return 2;
  }
  const from = command.source === undefined ? "" : `, settings from ${command.source}`;
  console.log(`tsgi: config OK: ${kind} app ${spec}${from}`);
  return 0;
}

/** Loads the app in one isolated child; throws AppLoadError when it could not. */
async function checkInChild(spec: string, config: Config): Promise<string> {
  const errorLog = new ErrorLog(config.logLevel);
  const isolated = isolatedApp(spec, { ...config, spares: 1, errorLog, args: [spec] });
  try {
    await isolated.ready();
    return "an isolated";
  } catch (error) {
    throw new AppLoadError(
      `the app could not be loaded in an isolated child (${
        error instanceof Error ? error.message : error
      }; its lines above say why)`,
    );
  } finally {
    await isolated.close();
  }
}

/** --reload: a master with at least one worker, replacing them when the app's files change. */
async function reloadCommand(
  spec: string,
  config: Config,
  args: string[],
  builtIn: boolean,
  configFile?: string,
): Promise<number> {
  if (builtIn) {
    return usageError(
      new ConfigError("--reload: this program's app is built in; there are no files to watch"),
    );
  }
  if (config.isolate === "request") {
    return usageError(new ConfigError("--reload cannot be combined with --isolate request yet"));
  }
  const folder = watchedFolder(spec);
  try {
    Deno.statSync(folder);
  } catch {
    return usageError(new AppLoadError(`App file not found: "${parseAppSpec(spec).path}"`));
  }
  new ErrorLog(config.logLevel).info(`Reload: watching ${folder} for changes`);
  const cwd = Deno.cwd();
  const shown = (path: string) => path.startsWith(cwd + SEP) ? relative(cwd, path) : path;
  return await runMaster(spec, { ...config, workers: Math.max(1, config.workers) }, args, {
    configFile,
    watch: (reload) => watchSources(folder, (path) => reload(`${shown(path)} changed`)),
  });
}

async function serveCommand(
  spec: string,
  config: Config,
  args: string[],
  builtIn: boolean,
  configFile?: string,
): Promise<number> {
  // A pool: this process is its master, or one of its workers (docs/workers.md).
  const role = currentRole();
  if (role === "worker") return await runWorker(spec, config);
  // --isolate request: a child that serves one request for its master (docs/isolation.md).
  if (role === "child") return await runChild(spec, config);
  // The app's folder stays readable to a narrowed or isolated app: not the place for a key.
  const narrows = config.isolate === "request" ||
    parsePermissionFlags(config.permissions).length > 0;
  if (narrows && !startedNarrowed()) {
    const exposed = exposedKeyLine(absoluteAppPath(spec), [config.certfile, config.keyfile]);
    if (exposed !== null) new ErrorLog(config.logLevel).warning(exposed);
  }
  const spawns = config.reload || config.workers > 0 || config.isolate === "request";
  if (spawns && missingPermissionsLine(true) !== "") {
    return usageError(new ConfigError(missingPermissionsLine(true)));
  }
  if (config.reload) return await reloadCommand(spec, config, args, builtIn, configFile);
  if (config.workers > 0 && config.isolate === "request") {
    return usageError(new ConfigError("--isolate request cannot be combined with --workers yet"));
  }
  if (config.workers > 0) {
    // Checked here too, so that a bad certificate or flag pair is status 2, not 3 from workers.
    try {
      loadTls(config);
    } catch (error) {
      return usageError(error);
    }
    return await runMaster(spec, config, args, { configFile });
  }
  const errorLog = new ErrorLog(config.logLevel);
  // Permission flags: given back before the app is imported, so it is loaded after the bind.
  const narrowed = config.isolate === "request" ? null : narrowedSetUp(spec, config, configFile);
  if (narrowed !== null && "why" in narrowed) {
    errorLog.warning(`Permission flags after APP are not applied: ${narrowed.why}`);
  }
  const dropGrants = narrowed !== null && "grants" in narrowed ? narrowed : null;
  let loaded: LoadedApp | null = null;
  // Isolated, the app is untrusted to its top-level code: a child loads it, never this process.
  if (dropGrants === null && config.isolate !== "request") {
    try {
      loaded = await loadApp(spec, config);
    } catch (error) {
      return usageError(error, config.logLevel);
    }
  }
  // Started by a systemd .socket unit: its sockets are served, --bind is not (deploy.md).
  const activation = takeSystemdSockets();
  // Narrowed and socket-activated: the folder made for the throwaway listener goes after.
  const adoptPath = dropGrants?.grants.adoptPath;
  if (adoptPath !== undefined && activation !== null) setThrowawayPath(adoptPath);
  let bound;
  try {
    if (activation === null) {
      for (const bind of config.bind) if (isUnixBind(bind)) await clearStaleSocket(bind.path);
    }
    // --reuse-port is the pool's: a single process must not join another's SO_REUSEPORT group.
    const options = { ...config, reusePort: false, errorLog, inherited: activation?.fds };
    bound = listen(options);
  } catch (error) {
    if (error instanceof ConfigError) return usageError(error);
    const what = activation === null ? "cannot listen" : "cannot serve systemd's sockets";
    console.error(`tsgi: ${what}: ${error instanceof Error ? error.message : error}`);
    return 1;
  } finally {
    if (adoptPath !== undefined) {
      setThrowawayPath(null);
      Deno.removeSync(adoptPath.slice(0, adoptPath.lastIndexOf("/")), { recursive: true });
    }
  }
  // Children and their guard are started once the sockets are bound or adopted: systemd's
  // are inheritable until adopted, and no child may hold one (it could accept connections).
  let isolated: IsolatedApp | null = null;
  if (config.isolate === "request") {
    try {
      isolated = isolatedApp(spec, { ...config, errorLog, args });
    } catch (error) {
      console.error(
        `tsgi: cannot start isolation: ${error instanceof Error ? error.message : error}`,
      );
      await bound.close();
      return 1;
    }
  }
  // Prepared while FFI is still this process's (a narrowed one gives it back just below).
  const closeListeners = prepareLeave(bound.addrs.map((addr) => addr.port));
  if (dropGrants !== null) {
    await dropSetUpGrants(dropGrants.grants, dropGrants.user);
    try {
      loaded = await loadApp(spec, config);
    } catch (error) {
      await bound.close();
      return usageError(error, config.logLevel);
    }
  }
  // With --spares 0 no child starts before a request: the first request finds a broken app.
  if (isolated !== null && config.spares > 0) {
    const status = await firstChildReady(isolated, bound);
    if (status !== 0) return status;
  }
  const handle = bound.start(isolated ?? loaded!.app);
  const scheme = config.certfile === "" ? "http" : "https";
  for (const addr of handle.addrs) console.error(`Listening on ${urlOf(addr, scheme)}`);
  for (const path of handle.socketPaths) console.error(`Listening on unix:${path}`);
  errorLog.debug(
    loaded === null
      ? `Serving ${spec} in isolated children`
      : `Serving ${loaded.kind} app ${loaded.spec}`,
  );
  await stopOnSignals(async (gracefulMs, keepIdle) => {
    // At an instant when none waits to be accepted: closing the listeners resets those queued.
    await closeListeners();
    await handle.shutdown(gracefulMs, keepIdle);
  }, errorLog);
  await isolated?.close();
  return 0;
}

/**
 * Waits for the first isolated child to load the app: a broken app is exit status 2 (its
 * child's log lines say why) before anything is served, as when this process loads it.
 */
async function firstChildReady(isolated: IsolatedApp, bound: BoundServer): Promise<number> {
  try {
    await isolated.ready();
    return 0;
  } catch (error) {
    await bound.close();
    await isolated.close();
    const loadFailed = error instanceof BootError && error.exitCode === 2;
    console.error(
      loadFailed
        ? "tsgi: the app could not be loaded (in an isolated child: its lines above say why)"
        : `tsgi: cannot start isolation: ${error instanceof Error ? error.message : error}`,
    );
    return loadFailed ? 2 : 1;
  }
}

type NarrowedSetUp =
  | { grants: SetUpGrants; user: PermissionFlag[] }
  | { why: string };

/**
 * With permission flags after APP, a single process narrows itself: it returns the grants to
 * give back when it runs narrowed already, else it starts itself again narrowed (and returns
 * only when it cannot: why). Null without permission flags.
 */
function narrowedSetUp(spec: string, config: Config, configFile?: string): NarrowedSetUp | null {
  const user = parsePermissionFlags(config.permissions);
  if (user.length === 0) return null;
  const given = takeNarrowedGrants(user);
  if (given === "unnarrowed") return { why: NOT_NARROWED };
  if (given !== "absent") return { grants: given, user };
  const widened = widenedGrantsLine(user);
  if (widened !== null) new ErrorLog(config.logLevel).warning(widened);
  // Socket activation: the sockets are adopted over a throwaway listener, a unix one in a
  // folder made for it here (the narrowed self may not write the temporary folder).
  const folder = socketsPassed() ? Deno.makeTempDirSync({ prefix: "tsgi-adopt-" }) : null;
  const grants = serverSetUpGrants({
    ...config,
    appPath: absoluteAppPath(spec),
    configFile,
    adoptPath: folder === null ? undefined : `${folder}/s`,
  });
  const why = narrowThisProcess(grants, user);
  if (folder !== null) Deno.removeSync(folder, { recursive: true });
  return { why };
}

/**
 * Resolves once a signal has stopped the server; a second signal stops it at once. SIGTERM (a
 * supervisor's stop, a rolling restart) leaves idle keep-alive connections for the client or
 * proxy to close; Ctrl-C does not wait for them.
 */
function stopOnSignals(
  shutdown: (gracefulMs?: number, keepIdle?: boolean) => Promise<void>,
  log: ErrorLog,
): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: Deno.Signal) => () => {
      if (stopping) {
        log.warning(`${signal} again: stopping now`);
        Deno.exit(0);
      }
      stopping = true;
      log.info(`${signal}: stopping gracefully`);
      shutdown(undefined, signal === "SIGTERM").then(resolve);
    };
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, onSignal(signal));
    }
  });
}
