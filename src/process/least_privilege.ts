// Least privilege for a process that serves the app itself (a single process, a pool's worker):
// it starts with the user's grants plus what its own set-up touches — its sockets, logs,
// certificates, /proc/self, libc — and gives back that set-up's grants before it imports the
// app, so that the app, its top-level code included, holds exactly the user's grants. Deno can
// revoke a grant but not narrow a whole one to a list, so each set-up grant is asked for by
// name and given back by name (docs/isolation.md, "Permission flags without isolation").

import {
  allowed,
  childPermissionFlags,
  isPermissionFlag,
  type PermissionFlag,
  type PermissionKind,
  userCovers,
} from "./permission_set.ts";
import { resolve } from "node:path";
import { denoDirectory, dirname } from "./app_location.ts";
import { type Bind, isUnixBind } from "../server/bind.ts";
import { forgetLibc } from "../server/libc.ts";

/** What a serving process touches before its app is imported, and what it keeps after. */
export interface SetUpGrants {
  /** Given back before the app is imported (unless a user's grant covers them). */
  setUp: {
    read: string[];
    write: string[];
    /** `host:port` and `unix:PATH`. */
    net: string[];
    env: string[];
    /** libc, through FFI: the whole kind, since Deno's list form wants paths. */
    ffi: boolean;
  };
  /** Kept, so that the app can be imported and the server keeps working: read paths. */
  keptRead: string[];
  /**
   * Where the set-up makes its throwaway unix listener when it adopts an inherited unix
   * socket (adopt.ts): Deno grants a unix socket by its exact path, in a folder it may write.
   */
  adoptPath?: string;
  /** The process narrowed by execv (it keeps its PID); absent for a master's workers. */
  pid?: number;
}

/** The set-up's variables: a worker's from its master, systemd's, the marker below. */
export const SET_UP_ENV = [
  "TSGI_ROLE",
  "TSGI_WORKER_ID",
  "TSGI_MAX_REQUESTS",
  "TSGI_BINDS",
  "TSGI_LISTEN_FDS",
  "TSGI_CONTROL",
  "TSGI_NARROWED",
  "LISTEN_PID",
  "LISTEN_FDS",
  "LISTEN_FDNAMES",
];

/** In a process started narrowed, its set-up grants (JSON): it gives them back, and does not narrow itself again. */
export const NARROWED_ENV = "TSGI_NARROWED";

/** Whether this process was started narrowed (its grants not yet taken). */
export function startedNarrowed(): boolean {
  try {
    return Deno.env.has(NARROWED_ENV);
  } catch {
    return false;
  }
}

/**
 * The set-up grants this process was started narrowed with, taken out of its environment:
 * "absent" when it was not; "unnarrowed" when it was meant to be but holds a whole kind of
 * permission the user's flags do not give (a permission set in a deno.json, say), which the
 * caller must say, not retry. A single process narrows itself by execv, keeping its PID, so
 * its grants name that PID: a variable inherited from another tsgi is not taken for them.
 */
export function takeNarrowedGrants(
  user: readonly PermissionFlag[],
): SetUpGrants | "absent" | "unnarrowed" {
  let raw: string | undefined;
  try {
    raw = Deno.env.get(NARROWED_ENV);
    Deno.env.delete(NARROWED_ENV);
  } catch {
    return "absent";
  }
  let grants: SetUpGrants;
  try {
    grants = JSON.parse(raw ?? "null");
  } catch {
    return "absent";
  }
  if (grants === null || (grants.pid !== undefined && grants.pid !== Deno.pid)) return "absent";
  return holdsUngranted(user) ? "unnarrowed" : grants;
}

/** Why a process started narrowed is not (takeNarrowedGrants() said "unnarrowed"). */
export const NOT_NARROWED = "started narrowed, this process still holds a whole kind of " +
  "permission the flags do not give (a permission set in deno.json?)";

/** Kinds a narrowed process never holds whole unless the user's flags give them whole. */
const NEVER_WHOLE = ["read", "write", "net", "env", "run", "sys"] as const;

/** Whether this process holds a whole kind of permission that `user` does not grant whole. */
function holdsUngranted(user: readonly PermissionFlag[]): boolean {
  return NEVER_WHOLE.some((name) =>
    allowed(user, name) !== "all" && Deno.permissions.querySync({ name }).state === "granted"
  );
}

/**
 * The `deno run` flags to start the serving process with: `runFlags` (this process's own, from
 * runtime_flags.ts) without their permission flags, then the set-up's and the user's grants.
 */
export function narrowedRunFlags(
  runFlags: readonly string[],
  grants: SetUpGrants,
  user: readonly PermissionFlag[],
): string[] {
  const { setUp, keptRead } = grants;
  const lists: Record<string, string[]> = {
    read: [...keptRead, ...setUp.read],
    write: setUp.write,
    net: setUp.net,
    env: setUp.env,
  };
  // Deno refuses an empty list ("--allow-write="): a kind with none is left out.
  const base: Partial<Record<PermissionKind, string[]>> = Object.fromEntries(
    Object.entries(lists).filter(([, values]) => values.length > 0),
  );
  let flags = childPermissionFlags(base, user);
  if (setUp.ffi && !flags.includes("--allow-all")) {
    flags = [...flags.filter((f) => !/^--allow-ffi(=|$)/.test(f)), "--allow-ffi"];
  }
  return [...runFlags.filter((f) => !isPermissionRunFlag(f)), "--no-prompt", ...flags];
}

/** Deno's permission flags, the short ones (`-R`, `-N`, …) and permission sets included. */
function isPermissionRunFlag(flag: string): boolean {
  return isPermissionFlag(flag) || /^-[ARWNESI](=|$)/.test(flag) ||
    /^--(no-prompt|permission-set)(=|$)/.test(flag) || /^-P(=|$)/.test(flag);
}

/**
 * A line for the log when a user's flag grants more than it says: an `--allow-ffi` list is all
 * of FFI, since the set-up needs libc and Deno cannot narrow a whole grant to a list (native
 * code can do anything anyway); null otherwise.
 */
export function widenedGrantsLine(user: readonly PermissionFlag[]): string | null {
  const ffi = user.find((f) => f.mode === "allow" && f.kind === "ffi" && f.values !== null);
  if (ffi === undefined) return null;
  return `--allow-ffi=${ffi.values!.join(",")} is all of FFI without --isolate request ` +
    "(tsgi's set-up needs libc); give --allow-ffi, or use --isolate request for a list";
}

/** Gives back the set-up's grants the user's flags do not cover; call it before the import. */
export async function dropSetUpGrants(
  grants: SetUpGrants,
  user: readonly PermissionFlag[],
  cwd = Deno.cwd(),
): Promise<void> {
  const { setUp, keptRead } = grants;
  const kept = (path: string) => keptRead.some((k) => path === k || path.startsWith(k + "/"));
  const revoke: Deno.PermissionDescriptor[] = [];
  for (const path of setUp.read) {
    if (!kept(path) && !userCovers(user, "read", path, cwd)) revoke.push({ name: "read", path });
  }
  for (const path of setUp.write) {
    if (!userCovers(user, "write", path, cwd)) revoke.push({ name: "write", path });
  }
  for (const host of setUp.net) {
    if (!netCovered(user, host)) revoke.push({ name: "net", host });
  }
  for (const variable of setUp.env) {
    if (!envCovered(user, variable)) revoke.push({ name: "env", variable });
  }
  if (
    setUp.ffi && !user.some((f) => f.mode === "allow" && (f.kind === "ffi" || f.kind === "all"))
  ) {
    revoke.push({ name: "ffi" });
    // Opened libc stays callable after the revoke, to any module that imports tsgi's table.
    forgetLibc("FFI was given back before the app was imported");
  }
  for (const descriptor of revoke) await Deno.permissions.revoke(descriptor);
}

/** Whether a user's net grant covers `host` (the whole kind, the same, or its host alone). */
function netCovered(user: readonly PermissionFlag[], host: string): boolean {
  const bare = host.startsWith("unix:") ? host : host.replace(/:\d+$/, "");
  return user.some((f) =>
    f.mode === "allow" &&
    (f.kind === "all" || (f.kind === "net" && (f.values === null ||
      f.values.includes(host) || f.values.includes(bare))))
  );
}

/** Whether a user's env grant covers `name` (the whole kind, the name, or a prefix with *). */
function envCovered(user: readonly PermissionFlag[], name: string): boolean {
  return user.some((f) =>
    f.mode === "allow" &&
    (f.kind === "all" || (f.kind === "env" && (f.values === null ||
      f.values.some((v) => v === name || (v.endsWith("*") && name.startsWith(v.slice(0, -1)))))))
  );
}

/** What a serving process's set-up is given, from its configuration. */
export interface ServingProcess {
  bind: readonly Bind[];
  certfile: string;
  keyfile: string;
  /** The access log's path, or "-"/"off". */
  accessLog: string;
  /** The app's file on disk; null for a built-in app. */
  appPath: string | null;
  /** The config file the command line was read from, if any. */
  configFile?: string;
  /** A pool worker's control socket. */
  control?: string;
  /**
   * A process that adopts inherited sockets (a worker its master's, a single process
   * systemd's) over a throwaway listener: on 127.0.0.1, or, for a unix socket, at this path.
   */
  adoptPath?: string;
}

/**
 * A line for the log when a TLS certificate or key lies in the app's folder, which the app may
 * always read (to be imported): a narrowed or isolated app could read the server's private key.
 * Null when none does.
 */
export function exposedKeyLine(appPath: string | null, files: readonly string[]): string | null {
  if (appPath === null) return null;
  const folder = dirname(appPath);
  const exposed = files.filter(Boolean).map(absolute).filter((f) => f.startsWith(folder + "/"));
  if (exposed.length === 0) return null;
  return `${exposed.join(", ")} ${exposed.length > 1 ? "are" : "is"} in the app's folder ` +
    `(${folder}), which the app may read whatever its permission flags: keep TLS files elsewhere`;
}

/** The grants a serving process's set-up needs and those it keeps, for `process`. */
export function serverSetUpGrants(process: ServingProcess): SetUpGrants {
  // Absolute: a relative path is not seen to be inside the app's folder (kept), and giving it
  // back would take the folder with it (Deno revokes a path's ancestors too); Deno refuses a
  // relative unix: grant outright.
  const files = [process.certfile, process.keyfile, process.configFile ?? ""].filter(Boolean)
    .map(absolute);
  const binds = process.bind.map((b) => isUnixBind(b) ? { ...b, path: absolute(b.path) } : b);
  const unixPaths = binds.flatMap((b) => isUnixBind(b) ? [b.path] : []);
  const logs = ["-", "off", ""].includes(process.accessLog) ? [] : [absolute(process.accessLog)];
  const control = process.control === undefined ? [] : [process.control, dirname(process.control)];
  const cache = denoDirectory();
  const grants: SetUpGrants = {
    setUp: {
      // Its own descriptors, by PID (Deno wants --allow-all for /proc/self): the PID is not
      // known before the start, and only tsgi's code runs before these are given back.
      read: ["/proc", ...files, ...unixPaths, ...control],
      write: [...logs, ...unixPaths, ...control],
      net: [
        ...binds.map(netHost),
        ...(process.control === undefined ? [] : [`unix:${process.control}`]),
      ],
      env: SET_UP_ENV,
      ffi: true,
    },
    keptRead: [
      ...(process.appPath === null ? [] : [dirname(process.appPath)]),
      ...(cache === null ? [] : [cache]),
      // The spare descriptor that answers 503 when descriptors run out (fd_reserve.ts).
      "/dev/null",
    ],
  };
  return process.adoptPath === undefined ? grants : adoptionGrants(grants, process.adoptPath);
}

/**
 * `grants` and what adopting inherited sockets takes: a throwaway listener of each socket's
 * kind (adopt.ts), on 127.0.0.1 or a unix socket at `path` (its folder readable and writable).
 */
export function adoptionGrants(grants: SetUpGrants, path: string): SetUpGrants {
  const { setUp } = grants;
  const folder = dirname(path);
  return {
    ...grants,
    setUp: {
      ...setUp,
      read: [...setUp.read, folder],
      write: [...setUp.write, folder],
      net: [...setUp.net, "127.0.0.1:0", `unix:${path}`],
    },
    adoptPath: path,
  };
}

/** `path` made absolute against the working directory. */
function absolute(path: string): string {
  return resolve(path);
}

/** A bind address as Deno's net permission names it. */
function netHost(bind: Bind): string {
  if (isUnixBind(bind)) return `unix:${bind.path}`;
  const host = bind.hostname.includes(":") ? `[${bind.hostname}]` : bind.hostname;
  return `${host}:${bind.port}`;
}
