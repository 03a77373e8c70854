// Where an app's own files and Deno's module cache are: what a process that runs the app with
// least privilege must still be able to read (an isolated child, a narrowed worker).

import { parseAppSpec } from "../app/loader.ts";

/** The app's file, absolute with links resolved; null when it is not a file on disk. */
export function absoluteAppPath(spec: string): string | null {
  const { path } = parseAppSpec(spec);
  const absolute = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  try {
    return Deno.statSync(absolute).isFile ? Deno.realPathSync(absolute) : null;
  } catch {
    return null;
  }
}

export function dirname(path: string): string {
  const at = path.lastIndexOf("/");
  return at <= 0 ? "/" : path.slice(0, at);
}

/** The module cache in use: DENO_DIR, else what `deno info` says, else the default. */
export function denoDirectory(): string | null {
  const given = readEnv("DENO_DIR");
  if (given) return given;
  if (!Deno.build.standalone) {
    try {
      const out = new Deno.Command(Deno.execPath(), {
        args: ["info", "--json"],
        stdin: "null",
        stderr: "null",
      }).outputSync();
      const dir = JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
      if (typeof dir === "string") return dir;
    } catch {
      // Fall through to the default.
    }
  }
  const home = readEnv("HOME");
  const cache = readEnv("XDG_CACHE_HOME") ?? (home ? `${home}/.cache` : null);
  return cache === null ? null : `${cache}/deno`;
}

/** A variable of this process's; undefined where it may not read it. */
function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}
