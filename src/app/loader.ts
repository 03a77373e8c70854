// Loads the app a command line names — "path/to/app.ts" (default export) or
// "path/to/app.ts:name" — tells a TSGI app from a fetch app, builds it first when the export
// is a factory (--app-factory), and wraps it in the validator (--validate). A program that
// imported its app at compile time (scripts/compile.ts) registers it with preloadApp(), and
// loadApp() then takes it from there instead of from disk.

import type { App, FetchApp } from "../tsgi/types.ts";

/** The app could not be loaded; the message says why, in one line. */
export class AppLoadError extends Error {
  /** The original error's whole stack, for a debug log; "" when there is nothing more. */
  readonly detail: string;

  constructor(message: string, detail = "") {
    super(message);
    this.name = "AppLoadError";
    this.detail = detail;
  }
}

export interface LoadedApp {
  app: App;
  kind: "tsgi" | "fetch";
  /** "path/to/app.ts:name", as given. */
  spec: string;
}

/** Splits "file.ts:name" into path and export name; a plain path means "default". */
export function parseAppSpec(spec: string): { path: string; exportName: string } {
  const colon = spec.lastIndexOf(":");
  if (colon > 0) {
    const name = spec.slice(colon + 1);
    if (/^[A-Za-z_$][\w$]*$/.test(name)) return { path: spec.slice(0, colon), exportName: name };
  }
  return { path: spec, exportName: "default" };
}

/** The settings that change how an app is loaded. */
export interface LoadOptions {
  /** The export is a function called once, and awaited, that returns the app. */
  appFactory?: boolean;
  /** Wrap the app in validate(): contract breaches become 500s naming the rule. */
  validate?: boolean;
}

/** Modules imported ahead, by the path their spec names (a compiled binary's app). */
const preloaded = new Map<string, Record<string, unknown>>();

/**
 * Registers a module imported ahead under the path of `spec`, so that loadApp(spec) — in this
 * process, its workers and its isolated children alike — uses it instead of importing from
 * disk, which a compiled binary cannot do.
 *
 * ```ts
 * import * as hello from "../../apps/hello.ts";
 * preloadApp("apps/hello.ts", hello);
 * const { app } = await loadApp("apps/hello.ts");
 * ```
 */
export function preloadApp(spec: string, module: object): void {
  preloaded.set(parseAppSpec(spec).path, module as Record<string, unknown>);
}

/**
 * Imports the module (or takes the one preloadApp registered) and returns its app, or throws
 * AppLoadError.
 *
 * ```ts
 * const { app, kind } = await loadApp("apps/hello.ts", { validate: true });
 * ```
 */
export async function loadApp(spec: string, options: LoadOptions = {}): Promise<LoadedApp> {
  const { path, exportName } = parseAppSpec(spec);
  const module = preloaded.get(path) ?? await importApp(path);
  if (!(exportName in module)) {
    throw new AppLoadError(
      exportName === "default"
        ? `"${path}" has no default export; name the app as "${path}:name"`
        : `"${path}" has no export named "${exportName}"`,
    );
  }
  const where = `${path}:${exportName}`;
  let value = module[exportName];
  if (options.appFactory) value = await buildApp(value, where);
  const { app, kind } = await classify(
    value,
    options.appFactory ? `The app ${where} built` : where,
  );
  // The adapters are imported only when needed: a per-request child's start-up is each
  // request's cost (--isolate request).
  if (!options.validate) return { app, kind, spec };
  const { validate } = await import("./validate.ts");
  return { app: validate(app), kind, spec };
}

async function importApp(path: string): Promise<Record<string, unknown>> {
  const url = fileUrlOf(path);
  const absolute = decodeURIComponent(url.pathname);
  try {
    const info = await Deno.stat(absolute);
    if (!info.isFile) throw new AppLoadError(`App path is not a file: "${path}"`);
  } catch (error) {
    if (error instanceof AppLoadError) throw error;
    if (error instanceof Deno.errors.NotCapable) {
      throw new AppLoadError(`No permission to read "${path}": run deno with --allow-read`);
    }
    throw new AppLoadError(`App file not found: "${path}"`);
  }
  try {
    return await import(url.href);
  } catch (error) {
    const stack = error instanceof Error ? error.stack ?? "" : "";
    throw new AppLoadError(`Cannot import "${path}": ${importFailure(error)}`, stack);
  }
}

/**
 * The first line of an import's failure and where it happened — the file, line and column of
 * a syntax error, or the first frame of an error thrown while the module ran — as `deno run`
 * would point at it, the path relative to the working directory.
 */
export function importFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const first = message.split("\n")[0];
  const stack = error instanceof Error ? error.stack ?? "" : "";
  const at = /\bat (file:\/\/\S+?:\d+:\d+)\s*$/m.exec(message)?.[1] ??
    firstForeignFrame(stack.slice(stack.indexOf("\n") + 1));
  return at === undefined ? first : `${first} (at ${shownPath(at)})`;
}

/** tsgi's own source: frames there (the import itself) say nothing about the app. */
const OWN_SOURCE = new URL("../", import.meta.url).href;

function firstForeignFrame(frames: string): string | undefined {
  for (const m of frames.matchAll(/\(?(file:\/\/[^\s()]+:\d+:\d+)\)?/g)) {
    if (!m[1].startsWith(OWN_SOURCE)) return m[1];
  }
  return undefined;
}

function shownPath(fileUrl: string): string {
  const path = decodeURIComponent(fileUrl.slice("file://".length));
  const cwd = Deno.cwd();
  return path.startsWith(cwd + "/") ? path.slice(cwd.length + 1) : path;
}

/**
 * The file URL of a path relative to the working directory. Plain URL arithmetic: node:path
 * would cost a per-request child (--isolate request) milliseconds to load.
 */
function fileUrlOf(path: string): URL {
  const cwd = Deno.cwd();
  const base = new URL(`file://${cwd.endsWith("/") ? cwd : cwd + "/"}`);
  return new URL(path.replaceAll("%", "%25").replaceAll("#", "%23").replaceAll("?", "%3F"), base);
}

/** Calls the factory once and awaits the app it returns. */
async function buildApp(factory: unknown, where: string): Promise<unknown> {
  if (typeof factory !== "function") {
    throw new AppLoadError(
      `${where} is not an app factory: expected a function, got ${describe(factory)}`,
    );
  }
  try {
    return await factory();
  } catch (error) {
    const stack = error instanceof Error ? error.stack ?? "" : "";
    throw new AppLoadError(`App factory ${where} failed: ${importFailure(error)}`, stack);
  }
}

/** A function is a TSGI app; an object with fetch() is a fetch app. */
export async function classify(
  value: unknown,
  where: string,
): Promise<{ app: App; kind: "tsgi" | "fetch" }> {
  if (typeof value === "function") return { app: value as App, kind: "tsgi" };
  if (
    value !== null && typeof value === "object" && typeof (value as FetchApp).fetch === "function"
  ) {
    const { toTsgiApp } = await import("./fetch/to_tsgi.ts");
    return { app: toTsgiApp(value as FetchApp), kind: "fetch" };
  }
  throw new AppLoadError(
    `${where} is not an app: expected a function (TSGI app) or an object with fetch() ` +
      `(fetch app), got ${describe(value)}`,
  );
}

function describe(value: unknown): string {
  return value === null ? "null" : typeof value;
}
