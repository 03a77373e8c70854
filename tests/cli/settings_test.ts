// The settings table (src/cli/settings.ts) on its own, no process started: the table is
// well-formed, its defaults survive being spelled as flags, its parsers refuse bad values
// naming the flag, and --help shows it section by section.

import assert from "node:assert/strict";
import { helpText } from "../../src/cli/cli.ts";
import {
  type AnySetting,
  type Config,
  ConfigError,
  defaultConfig,
  formatDefault,
  type Section,
  SECTIONS,
  settingFor,
  SETTINGS,
} from "../../src/cli/settings.ts";

/** Values that appear more than once in `values`. */
function repeated(values: readonly string[]): string[] {
  return values.filter((v, i) => values.indexOf(v) !== i);
}

function setting(key: keyof Config): AnySetting {
  const found = settingFor(key);
  if (!found) throw new Error(`no setting for ${key}`);
  return found;
}

/** One value of a setting as the command line spells it. */
function spell(s: AnySetting, value: unknown): string {
  return s.format ? s.format(value) : String(value);
}

// --- the table ------------------------------------------------------------------------------

Deno.test("every setting has a unique flag and short flag, a known section and some help", () => {
  assert.deepEqual(repeated(SETTINGS.map((s) => s.flag)), [], "repeated flags");
  const shorts = SETTINGS.flatMap((s) => (s.short === undefined ? [] : [s.short]));
  assert.deepEqual(repeated(shorts), [], "repeated short flags");
  for (const s of SETTINGS) {
    assert.match(s.flag, /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/, `--${s.flag} is kebab-case`);
    if (s.short !== undefined) assert.match(s.short, /^[a-zA-Z]$/, `-${s.short} of --${s.flag}`);
    assert.ok(Object.hasOwn(SECTIONS, s.section), `--${s.flag}: unknown section ${s.section}`);
    assert.ok(s.help.trim().length > 0, `--${s.flag} has no help`);
    // A flag that takes no value shows none in --help; one that does names it.
    assert.equal(s.metavar === "", s.boolean === true, `--${s.flag}: metavar "${s.metavar}"`);
  }
});

Deno.test("every section has settings, and every setting is found by its config key", () => {
  const used = new Set(SETTINGS.map((s) => s.section));
  for (const section of Object.keys(SECTIONS)) {
    assert.ok(used.has(section as Section), `section ${section} is empty`);
  }
  for (const s of SETTINGS) assert.equal(settingFor(s.key), s);
  // The look-up is by own key only: Object.prototype's names are not settings.
  for (const key of ["toString", "__proto__", "constructor", "keep-alive"]) {
    assert.equal(settingFor(key), undefined, key);
  }
});

Deno.test("no setting takes the flag or short flag of a command flag (--help, --config, …)", () => {
  const help = helpText();
  const command = help.slice(help.indexOf("\nCommand:\n"));
  const commandFlags = [...command.matchAll(/^ {2}(?:-(\w), )?\s*--([a-z-]+)/gm)];
  assert.ok(commandFlags.length >= 3, "the Command section lists the command's flags");
  for (const [, short, flag] of commandFlags) {
    for (const s of SETTINGS) {
      assert.notEqual(s.flag, flag, `--${flag} is both a setting and a command flag`);
      if (short !== undefined) assert.notEqual(s.short, short, `-${short} is taken twice`);
    }
  }
});

// --- defaults -------------------------------------------------------------------------------

Deno.test("formatDefault() of every setting parses back to its default", () => {
  for (const s of SETTINGS) {
    // A repeatable setting's default is a list, shown joined: each value is one flag.
    const raws = s.multiple ? (s.default as unknown[]).map((v) => spell(s, v)) : [formatDefault(s)];
    if (s.multiple) assert.equal(formatDefault(s), raws.join(", "), `--${s.flag}`);
    assert.deepEqual(s.parse(raws, s.flag), s.default, `--${s.flag} ${raws.join(" ")}`);
  }
});

Deno.test("defaultConfig() holds every setting's default and returns fresh copies", () => {
  const first = defaultConfig();
  assert.deepEqual(Object.keys(first), SETTINGS.map((s) => s.key));
  for (const s of SETTINGS) assert.deepEqual(first[s.key], s.default, s.key);

  const bind = structuredClone(first.bind);
  first.bind.push({ path: "/tmp/x.sock" });
  (first.bind[0] as { port: number }).port = 1;
  first.workers = 9;
  const second = defaultConfig();
  assert.deepEqual(second.bind, bind, "a caller's change to bind does not leak");
  assert.equal(second.workers, 0);
  assert.deepEqual(setting("bind").default, bind, "nor into the table");
});

// --- parsing --------------------------------------------------------------------------------

/** Values each setting's parse must refuse: [config key, raw value]. */
const REFUSED: [keyof Config, string][] = [
  ["maxBodySize", "10X"],
  ["maxBodySize", "1.5K"],
  ["maxBodySize", "99999999999999G"],
  ["limitRequestHead", "-1"],
  ["minBodyRate", ""],
  ["keepAlive", "-1"],
  ["headerTimeout", "1e3"],
  ["timeout", "soon"],
  ["workers", "-1"],
  ["maxRequests", "1.5"],
  ["limitRequestFields", "-3"],
  ["limitRequestLine", "0"],
  ["maxConnections", "-1"],
  ["maxChildren", "0"],
  ["bind", "127.0.0.1:65536"],
  ["bind", "[::1]:70000"],
  ["bind", "h:-1"],
  ["bind", "unix:"],
  ["bind", "[::1"],
  ["bind", "a:b:80"],
  ["umask", "8"],
  ["umask", "0o8"],
  ["umask", "1234"],
  ["umask", "-1"],
  ["logLevel", "verbose"],
  ["accessLogFormat", "xml"],
  ["isolate", "thread"],
  ["appFactory", "yes"],
  ["validate", "1"],
  ["reload", ""],
  ["rootPath", "api"],
  ["rootPath", "/a?b"],
  ["forwardedAllowIps", "nope"],
];

Deno.test("each setting's parse refuses bad values with a ConfigError naming the flag", () => {
  for (const [key, raw] of REFUSED) {
    const s = setting(key);
    assert.throws(() => s.parse([raw], s.flag), (error: Error) => {
      assert.ok(error instanceof ConfigError, `--${s.flag} ${raw}: ${error}`);
      assert.ok(error.message.startsWith(`--${s.flag}: `), error.message);
      assert.ok(error.message.includes(raw), `${error.message} shows "${raw}"`);
      return true;
    }, `--${s.flag} ${JSON.stringify(raw)} accepted`);
  }
});

/** Values the parsers accept, with what they mean: [config key, raw value, typed value]. */
const ACCEPTED: [keyof Config, string, unknown][] = [
  ["maxBodySize", "10M", 10 * 1024 * 1024],
  ["maxBodySize", "1KiB", 1024],
  ["maxBodySize", "2g", 2 * 1024 ** 3],
  ["maxBodySize", "0", 0],
  ["keepAlive", "0.5", 0.5],
  ["umask", "007", 0o007],
  ["umask", "0o27", 0o027],
  ["umask", "777", 0o777],
  ["bind", ":8080", [{ hostname: "0.0.0.0", port: 8080 }]],
  ["bind", "[::1]:65535", [{ hostname: "::1", port: 65535 }]],
  ["bind", "unix:/tmp/s", [{ path: "/tmp/s" }]],
  ["rootPath", "/api/", "/api"],
  ["rootPath", "/", ""],
  ["appFactory", "true", true],
];

Deno.test("each setting's parse reads good values to their typed meaning", () => {
  for (const [key, raw, value] of ACCEPTED) {
    const s = setting(key);
    assert.deepEqual(s.parse([raw], s.flag), value, `--${s.flag} ${raw}`);
  }
});

Deno.test("a repeatable setting checks every value; a single one keeps the last", () => {
  const bind = setting("bind");
  assert.throws(() => bind.parse(["127.0.0.1:1", "unix:"], "bind"), /^ConfigError: --bind: /);
  assert.deepEqual(bind.parse(["127.0.0.1:1", "unix:/s"], "bind"), [
    { hostname: "127.0.0.1", port: 1 },
    { path: "/s" },
  ]);
  const workers = setting("workers");
  assert.equal(workers.parse(["1", "3"], "workers"), 3);
});

// --- --help ---------------------------------------------------------------------------------

/** --help's setting lines as [section title, flag, short, config key], in order. */
function helpEntries(help: string): [string, string, string, string][] {
  const entries: [string, string, string, string][] = [];
  let title = "";
  for (const line of help.slice(0, help.indexOf("\nCommand:\n")).split("\n")) {
    const heading = /^(\S.*):$/.exec(line);
    if (heading) title = heading[1];
    const flag = /^ {2}(?:-(\w), | {4})--([a-z0-9-]+)\b.* {2}\[(\w+)\]$/.exec(line);
    if (flag) entries.push([title, flag[2], flag[1] ?? "", flag[3]]);
  }
  return entries;
}

Deno.test("--help lists every flag under its section's heading, sections and flags in order", () => {
  const help = helpText();
  const expected = Object.entries(SECTIONS).flatMap(([section, title]) =>
    SETTINGS.filter((s) => s.section === section)
      .map((s): [string, string, string, string] => [title, s.flag, s.short ?? "", s.key])
  );
  assert.deepEqual(helpEntries(help), expected);
  // The headings themselves, in SECTIONS order and each once.
  const headings = help.split("\n").filter((l) =>
    Object.values(SECTIONS).some((t) => l === `${t}:`)
  );
  assert.deepEqual(headings, Object.values(SECTIONS).map((t) => `${t}:`));
});
