// How a child is started: the command, its Deno flags and permissions, and its environment.
//
// With least privilege (the default): `deno run --no-prompt [the master's config flags]
// --allow-read=APP_FOLDER,DENO_DIR[,…] [the user's grants] ENTRY LOAD`, where ENTRY is a module
// generated in the master's private folder that imports the app by a literal specifier (its
// modules then load with the entry's graph, which needs no read permission) and LOAD is the
// child's ChildLoad as JSON. The child may read and write the master's socket and connect to
// it, and revokes those grants before the app is imported. A compiled binary's children (or
// those of an entry whose app is not on disk) are this program again, with its permissions.
//
// Either way the environment is minimal (clearEnv): DENO_DIR (the master's module cache),
// DENO_V8_FLAGS (the heap cap), NO_COLOR where stderr is no terminal, PATH (Deno looks programs
// up there, before it checks --allow-run), and the variables --allow-env names.

import { absoluteAppPath, denoDirectory, dirname } from "../process/app_location.ts";
import type { ChildLoad } from "./frames.ts";
import { CHILD_LOAD_ENV } from "./frames.ts";
import {
  allowed,
  childPermissionFlags,
  type PermissionFlag,
  type PermissionKind,
  userCovers,
} from "../process/permission_set.ts";
import { selfCommand } from "../process/reexec.ts";
import { roleEnv } from "../process/role.ts";
import { ownRunFlags } from "../process/runtime_flags.ts";

export interface ChildCommandOptions {
  /** The app as the command line names it (`path/to/app.ts[:name]`). */
  spec: string;
  /** The user's arguments, for a child that is this program again. */
  userArgs: string[];
  appFactory: boolean;
  validate: boolean;
  /** The master's socket, and its private folder (for the generated entry). */
  socket: string;
  privateDir: string;
  /** The user's --allow-* and --deny-* flags. */
  permissions: readonly PermissionFlag[];
  /** The V8 heap cap in bytes; 0 for none. */
  memoryBytes: number;
  /** Words before the command (the parent-death signal's setpriv), or none. */
  prefix: string[];
}

/** What Deno.Command needs to start one child. */
export interface Spawnable {
  command: string;
  args: string[];
  env: Record<string, string>;
  /** Written to the child's stdin, which then ends; without it, stdin is /dev/null. */
  input?: string;
}

export interface ChildCommand {
  /** Null when the child runs with least privilege; otherwise why it does not. */
  notNarrowed: string | null;
  /** The command for the child that will say `token`. */
  forToken(token: string): Spawnable;
}

const CHILD_MODULE = new URL("./child.ts", import.meta.url).href;

/** Decides how children are started, and writes the generated entry when there is one. */
export function childCommand(options: ChildCommandOptions): ChildCommand {
  const appPath = absoluteAppPath(options.spec);
  const env = childEnv(options);
  const load = (token: string | undefined, revoke: Deno.PermissionDescriptor[]): ChildLoad => ({
    spec: options.spec,
    appFactory: options.appFactory,
    validate: options.validate,
    socket: options.socket,
    token,
    revoke,
  });
  if (Deno.build.standalone) {
    return selfCommandFor(
      options,
      env,
      load,
      "a compiled program's children keep its own permissions",
    );
  }
  if (appPath === null) {
    return selfCommandFor(
      options,
      env,
      load,
      "the app's file is not on disk (a built-in app): its children keep this program's permissions",
    );
  }
  return narrowedCommand(options, env, load, appPath);
}

type LoadFor = (token: string | undefined, revoke: Deno.PermissionDescriptor[]) => ChildLoad;

/** This program again, with its own permissions; the load goes in CHILD_LOAD_ENV. */
function selfCommandFor(
  options: ChildCommandOptions,
  env: Record<string, string>,
  load: LoadFor,
  why: string,
): ChildCommand {
  const self = selfCommand(options.userArgs);
  const [command, ...args] = [...options.prefix, self.command, ...self.args];
  return {
    notNarrowed: why,
    forToken: (token) => ({
      command,
      args,
      env: { ...env, ...roleEnv("child"), [CHILD_LOAD_ENV]: JSON.stringify(load(token, [])) },
    }),
  };
}

/** Least privilege: the generated entry, with the defaults and the user's grants. */
function narrowedCommand(
  options: ChildCommandOptions,
  env: Record<string, string>,
  load: LoadFor,
  appPath: string,
): ChildCommand {
  const entry = `${options.privateDir}/child_entry.ts`;
  Deno.writeTextFileSync(entry, entrySource(appPath));
  const socket = options.socket;
  const base: Partial<Record<PermissionKind, string[]>> = {
    read: [dirname(appPath), ...(env.DENO_DIR ? [env.DENO_DIR] : []), socket],
    write: [socket],
    net: [`unix:${socket}`],
  };
  // Revoking a grant of ours that a grant of the user's covers would revoke the user's too.
  const cwd = Deno.cwd();
  const revoke: Deno.PermissionDescriptor[] = [];
  if (!userCovers(options.permissions, "net", socket, cwd)) {
    revoke.push({ name: "net", host: `unix:${socket}` });
  }
  for (const name of ["read", "write"] as const) {
    if (!userCovers(options.permissions, name, socket, cwd)) revoke.push({ name, path: socket });
  }
  const [command, ...args] = [
    ...options.prefix,
    Deno.execPath(),
    "run",
    "--no-prompt",
    ...runtimeFlags(),
    ...childPermissionFlags(base, options.permissions),
    entry,
  ];
  return {
    notNarrowed: null,
    // The token on stdin, not in the arguments: /proc/PID/cmdline is readable to any child
    // granted /proc, and a sibling's token would let it take that sibling's request.
    forToken: (token) => ({
      command,
      args: [...args, JSON.stringify(load(undefined, revoke))],
      env,
      input: token,
    }),
  };
}

/** The generated entry: the app by a literal specifier, then the child's own code. */
function entrySource(appPath: string): string {
  const app = JSON.stringify(new URL(`file://${encodePath(appPath)}`).href);
  return `// Generated by tsgi for the children of process ${Deno.pid} (src/isolate/child_command.ts).
import { childMain } from ${JSON.stringify(CHILD_MODULE)};
Deno.exit(await childMain(() => import(${app})));
`;
}

/** The child's environment: nothing of the master's but what is listed above. */
function childEnv(options: ChildCommandOptions): Record<string, string> {
  const env: Record<string, string> = {};
  const denoDir = denoDirectory();
  if (denoDir !== null) env.DENO_DIR = denoDir;
  if (!Deno.stderr.isTerminal()) env.NO_COLOR = "1";
  // The runtime's OpenTelemetry set-up (read by Deno itself, not by the app: the app still
  // needs --allow-env to read them), so that a child's spans reach the master's collector.
  if (masterEnv("OTEL_DENO") !== undefined) {
    const all = masterEnvAll();
    for (const key in all) if (key.startsWith("OTEL_")) env[key] = all[key];
  }
  if (options.memoryBytes > 0) {
    const mib = Math.max(1, Math.floor(options.memoryBytes / 2 ** 20));
    env.DENO_V8_FLAGS = `--max-old-space-size=${mib}`;
  }
  // Deno looks a program up in PATH before it checks --allow-run: with it, a refusal names
  // the program, and a granted one is found.
  const path = masterEnv("PATH");
  if (path !== undefined) env.PATH = path;
  const names = allowed(options.permissions, "env");
  if (names === "all") return { ...masterEnvAll(), ...env };
  for (const name of names) {
    if (name.endsWith("*")) {
      const prefix = name.slice(0, -1);
      const all = masterEnvAll();
      for (const key in all) if (key.startsWith(prefix)) env[key] = all[key];
    } else {
      const value = masterEnv(name);
      if (value !== undefined) env[name] = value;
    }
  }
  return env;
}

/** A variable of the master's; undefined where it may not read it. */
function masterEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** The master's whole environment, or none where it may not read it all. */
function masterEnvAll(): Record<string, string> {
  try {
    return Deno.env.toObject();
  } catch {
    return {};
  }
}

/**
 * The master's own `deno run` flags that say how code is found and run (config, import map,
 * lock file, unstable features), without its permissions, V8 flags or cache reloading: the
 * child's are its own. Without --config, the one Deno found for main.ts is named, since Deno
 * looks for it beside the entry, which for a child is a generated module elsewhere.
 */
function runtimeFlags(): string[] {
  const flags = (ownRunFlags() ?? []).filter((flag) => !NOT_INHERITED.test(flag));
  const configured = flags.some((f) => /^(-c|--config(=.*)?|--no-config)$/.test(f));
  if (configured) return flags;
  const config = findConfig(dirname(decodeURIComponent(new URL(selfEntry()).pathname)));
  return [...flags, ...(config === null ? ["--no-config"] : ["--config", config])];
}

/** Permission flags (long and short), V8 flags, cache reloading, type checking, prompting. */
const NOT_INHERITED =
  /^(--(allow|deny|ignore)-.*|--permission-set.*|-[A-Za-z]*[ARWNESIP][A-Za-z]*(=.*)?|--v8-flags.*|--cpu-prof.*|--inspect.*|--watch.*|-r|--reload.*|--check.*|--no-prompt)$/;

/** The entry module this program runs for workers (main.ts, unless a compile entry). */
function selfEntry(): string {
  const path = selfCommand([]).args.at(-1) ?? "";
  return `file://${encodePath(path)}`;
}

/** deno.json or deno.jsonc in `dir` or the nearest folder above it. */
function findConfig(dir: string): string | null {
  for (let at = dir;; at = dirname(at)) {
    for (const name of ["deno.json", "deno.jsonc"]) {
      try {
        if (Deno.statSync(`${at}/${name}`).isFile) return `${at}/${name}`;
      } catch {
        // Not here.
      }
    }
    if (at === "/") return null;
  }
}

/** Whether childCommand() narrows the children of `spec` to least privilege. */
export function childrenNarrowed(spec: string): boolean {
  return !Deno.build.standalone && absoluteAppPath(spec) !== null;
}

/** The app's file as an absolute path; null when it is not on disk. */
function encodePath(path: string): string {
  return path.replaceAll("%", "%25").replaceAll("#", "%23").replaceAll("?", "%3F");
}
