// The config file: `--config tsgi.config.ts` (a module whose default export is an object of
// settings), a JSON file, or the "tsgi" section of a deno.json. Its keys are the settings'
// `key`s from src/settings.ts, plus `app`. Every value goes through its setting's own parse(),
// the same as a flag: a string as the command line would spell it, or a typed value (a number,
// a boolean, an array for a repeatable setting), which is first spelled out with format().
//
//   export default { app: "apps/hello.ts", bind: ["127.0.0.1:8000"], workers: 2, keepAlive: 5 };

import { basename, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import {
  assignSetting,
  type Config,
  ConfigError,
  type Setting,
  settingFor,
  SETTINGS,
} from "./settings.ts";
import { closest } from "./suggest.ts";

/** The file's key for the app spec; every other key is a setting's. */
export const APP_KEY = "app";

/** The settings a config file gave, validated. */
export interface FileSettings {
  /** The file, as named on the command line or found ("deno.json"). */
  source: string;
  /** The app spec, if the file names one. */
  app?: string;
  values: Partial<Config>;
}

/**
 * The deno.json in `cwd`, when it has a "tsgi" section; null otherwise. A deno.json that
 * cannot be read or parsed is no config of ours: Deno itself reports it.
 */
export function findDenoJsonConfig(cwd = Deno.cwd()): string | null {
  const path = resolve(cwd, "deno.json");
  try {
    const json = JSON.parse(Deno.readTextFileSync(path));
    return json !== null && typeof json === "object" && "tsgi" in json ? "deno.json" : null;
  } catch {
    return null;
  }
}

/**
 * Reads and validates a config file; throws ConfigError naming the file and the key.
 *
 * ```ts
 * const { app, values } = await loadConfigFile("tsgi.config.ts");
 * ```
 */
export async function loadConfigFile(path: string): Promise<FileSettings> {
  const object = await readObject(path);
  return { source: path, ...settingsFromObject(object, path) };
}

async function readObject(path: string): Promise<unknown> {
  const absolute = resolve(path);
  try {
    if (!Deno.statSync(absolute).isFile) throw new Error("not a file");
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound ? "no such file" : firstLine(error);
    throw new ConfigError(`--config: cannot read "${path}": ${why}`);
  }
  if (absolute.endsWith(".json")) {
    let json: unknown;
    try {
      json = JSON.parse(await Deno.readTextFile(absolute));
    } catch (error) {
      throw new ConfigError(`--config: cannot parse "${path}": ${firstLine(error)}`);
    }
    if (!/^deno\.json$/.test(basename(absolute))) return json;
    if (json === null || typeof json !== "object" || !("tsgi" in json)) {
      throw new ConfigError(`--config: "${path}" has no "tsgi" section`);
    }
    return (json as { tsgi: unknown }).tsgi;
  }
  let module: Record<string, unknown>;
  try {
    module = await import(pathToFileURL(absolute).href);
  } catch (error) {
    throw new ConfigError(`--config: cannot import "${path}": ${firstLine(error)}`);
  }
  if (!("default" in module)) {
    throw new ConfigError(`--config: "${path}" has no default export (an object of settings)`);
  }
  return module.default;
}

/** Validates an object of settings from `source`; throws ConfigError for the first bad key. */
export function settingsFromObject(
  object: unknown,
  source: string,
): { app?: string; values: Partial<Config> } {
  if (object === null || typeof object !== "object" || Array.isArray(object)) {
    throw new ConfigError(
      `${source}: expected an object of settings, got ${describe(object)}`,
    );
  }
  const values: Partial<Config> = {};
  let app: string | undefined;
  for (const [key, value] of Object.entries(object)) {
    if (key === APP_KEY) {
      if (typeof value !== "string" || value === "") {
        throw new ConfigError(`${source}: "app": expected an app spec like "apps/hello.ts"`);
      }
      app = value;
      continue;
    }
    const setting = settingFor(key);
    if (setting === undefined) throw new ConfigError(`${source}: unknown key "${key}"${hint(key)}`);
    assignSetting(values, setting, parseValue(setting, value, source));
  }
  return { app, values };
}

/**
 * A value (or a list, for a repeatable setting) through the setting's parse(), its error
 * retold with the file and the key. Numbers and booleans are spelled as a flag would be first.
 */
function parseValue<K extends keyof Config>(
  setting: Setting<K>,
  value: unknown,
  source: string,
): Config[K] {
  const where = `${source}: "${setting.key}"`;
  const spell = (item: unknown): string => {
    if (typeof item === "string") return item;
    if (typeof item === "number" || typeof item === "boolean") {
      return setting.format ? setting.format(item) : String(item);
    }
    throw new ConfigError(`${where}: expected a string, number or boolean, got ${describe(item)}`);
  };
  if (!setting.multiple && Array.isArray(value)) {
    throw new ConfigError(`${where}: expected one value, got a list`);
  }
  const items = Array.isArray(value) ? value : [value];
  if (items.length === 0) throw new ConfigError(`${where}: expected at least one value`);
  const raws = items.map(spell);
  try {
    return setting.parse(raws, setting.flag);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(`${where}: ${error.message.replace(`--${setting.flag}: `, "")}`);
  }
}

/** "keep-alive" and "--keep-alive" are flags; the file wants the key. */
function hint(key: string): string {
  const flag = key.replace(/^-+/, "");
  const setting = SETTINGS.find((s) => s.flag === flag);
  if (setting) return ` (the key for --${setting.flag} is "${setting.key}")`;
  const guess = closest(key, SETTINGS.map((s) => s.key));
  return guess === undefined ? "" : `: did you mean "${guess}"?`;
}

/**
 * The merged configuration as JSON, one key per line, `app` first (when there is one) and
 * then the settings in table order, each spelled so that the output is itself a valid config file.
 */
export function formatConfig(app: string | undefined, config: Config): string {
  const lines = app === undefined ? [] : [`  ${JSON.stringify(APP_KEY)}: ${JSON.stringify(app)}`];
  for (const setting of SETTINGS) {
    const value = config[setting.key];
    const show = (v: unknown) => setting.format ? setting.format(v) : v;
    const shown = Array.isArray(value)
      ? `[${value.map((v) => JSON.stringify(show(v))).join(", ")}]`
      : JSON.stringify(show(value));
    lines.push(`  ${JSON.stringify(setting.key)}: ${shown}`);
  }
  return `{\n${lines.join(",\n")}\n}`;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return typeof value;
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0];
}
