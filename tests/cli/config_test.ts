// The config file (--config FILE, or a "tsgi" section in ./deno.json), --print-config and
// --check-config: in-process for the validation path, and as a user runs them — a real
// `deno run main.ts` in a temporary folder holding the config file.

import assert from "node:assert/strict";
import { formatConfig, settingsFromObject } from "../../src/cli/config_file.ts";
import { helpText } from "../../src/cli/cli.ts";
import {
  type AnySetting,
  type Config,
  ConfigError,
  defaultConfig,
  SETTINGS,
} from "../../src/cli/settings.ts";
import { fromFileUrl } from "../support/paths.ts";
import { run } from "../support/process.ts";

const MAIN = fromFileUrl(new URL("../../main.ts", import.meta.url));
const ROOT = fromFileUrl(new URL("../..", import.meta.url));
const HELLO = `${ROOT}apps/hello.ts`;
const ECHO = `${ROOT}apps/echo.ts`;

function runCli(args: string[], cwd: string) {
  return run(Deno.execPath(), ["run", "-A", MAIN, ...args], cwd);
}

/** A temporary folder holding `files`; removed after `fn`. */
async function inFolder(
  files: Record<string, string>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tsgi-config-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function tsModule(object: string): string {
  return `export default ${object};\n`;
}

async function waitUntil(what: string, check: () => boolean, ms = 30_000) {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

// --- one validation path --------------------------------------------------------------------

Deno.test("settingsFromObject() takes every setting's default as the CLI spells it", () => {
  const object: Record<string, unknown> = {};
  const spell = (s: AnySetting, v: unknown) => (s.format ? s.format(v) : String(v));
  for (const s of SETTINGS) {
    object[s.key] = Array.isArray(s.default)
      ? s.default.map((v) => spell(s, v))
      : spell(s, s.default);
  }
  const { values } = settingsFromObject(object, "t.json");
  assert.deepEqual(values, defaultConfig());
});

Deno.test("formatConfig() output is a config file that gives the same configuration", () => {
  const config: Config = {
    ...defaultConfig(),
    bind: [{ hostname: "::1", port: 8080 }, { path: "/tmp/x.sock" }],
    umask: 0o027,
    keepAlive: 2.5,
    maxBodySize: 10 * 1024 * 1024,
    validate: true,
    workers: 4,
    rootPath: "/api",
  };
  const text = formatConfig("apps/hello.ts", config);
  const lines = text.split("\n");
  assert.equal(lines.length, SETTINGS.length + 3, "braces, app, one line per setting");
  assert.equal(lines[1], '  "app": "apps/hello.ts",');
  assert.equal(lines[2], '  "bind": ["[::1]:8080", "unix:/tmp/x.sock"],');
  assert.deepEqual(
    lines.slice(2, -1).map((l) => JSON.parse(`{${l.replace(/,$/, "")}}`)).map(Object.keys).flat(),
    SETTINGS.map((s) => s.key),
    "settings in table order",
  );
  const again = settingsFromObject(JSON.parse(text), "printed.json");
  assert.equal(again.app, "apps/hello.ts");
  assert.deepEqual(again.values, config);
});

Deno.test("settingsFromObject() validates typed values with the settings' own parse()", () => {
  const { values } = settingsFromObject(
    { workers: 2, keepAlive: 0.5, validate: true, umask: 0o077, bind: "127.0.0.1:0" },
    "t.ts",
  );
  assert.deepEqual(values, {
    workers: 2,
    keepAlive: 0.5,
    validate: true,
    umask: 0o077,
    bind: [{ hostname: "127.0.0.1", port: 0 }],
  });
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ workers: -1 }, /^t\.ts: "workers": expected a whole number \(0 or more\), got "-1"$/],
    [{ keepAlive: "soon" }, /^t\.ts: "keepAlive": expected a number of seconds/],
    [{ validate: "yes" }, /^t\.ts: "validate": expected true or false, got "yes"$/],
    [{ bind: ["localhost:99999"] }, /^t\.ts: "bind": expected a port from 0 to 65535/],
    [{ bind: [] }, /^t\.ts: "bind": expected at least one value$/],
    [{ workers: [1, 2] }, /^t\.ts: "workers": expected one value, got a list$/],
    [{ logLevel: { level: "info" } }, /^t\.ts: "logLevel": expected a string, number or boolean/],
    [{ keepalive: 5 }, /^t\.ts: unknown key "keepalive": did you mean "keepAlive"\?$/],
    [{ port: 8000 }, /^t\.ts: unknown key "port": did you mean "bind"\?$/],
    [{ "keep-alive": 5 }, /unknown key "keep-alive" \(the key for --keep-alive is "keepAlive"\)/],
    [{ app: 42 }, /^t\.ts: "app": expected an app spec/],
  ];
  for (const [object, expected] of cases) {
    assert.throws(() => settingsFromObject(object, "t.ts"), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, expected);
      return true;
    });
  }
  assert.throws(() => settingsFromObject([1], "t.ts"), /t\.ts: expected an object of settings/);
});

Deno.test("--help shows each setting's config key and the config flags", () => {
  const help = helpText();
  for (const s of SETTINGS) assert.ok(help.includes(`--${s.flag}`) && help.includes(`[${s.key}]`));
  for (const flag of ["-c, --config FILE", "--print-config", "--check-config", "--reload"]) {
    assert.ok(help.includes(flag), flag);
  }
});

// --- the command line -----------------------------------------------------------------------

Deno.test("--print-config merges defaults, the file and flags, flags last", async () => {
  const file = tsModule(
    `{ app: ${JSON.stringify(HELLO)}, bind: ["127.0.0.1:9000"], workers: 2, keepAlive: "7", ` +
      `umask: 0o077, accessLog: "off" }`,
  );
  await inFolder({ "tsgi.config.ts": file }, async (dir) => {
    const { code, stdout, stderr } = await runCli(
      ["--config", "tsgi.config.ts", "--print-config", "--keep-alive", "9", "-b", ":8080"],
      dir,
    );
    assert.equal(code, 0, stderr);
    const config = JSON.parse(stdout);
    assert.equal(config.app, HELLO);
    assert.deepEqual(config.bind, ["0.0.0.0:8080"], "--bind replaces the file's list");
    assert.equal(config.keepAlive, 9, "a flag beats the file");
    assert.equal(config.workers, 2, "the file beats the default");
    assert.equal(config.umask, "0o077");
    assert.equal(config.accessLog, "off");
    assert.equal(config.headerTimeout, 10, "the default where neither says");
    assert.deepEqual(Object.keys(config), ["app", ...SETTINGS.map((s) => s.key)]);
    assert.equal(stdout.trim().split("\n").length, SETTINGS.length + 3, "one key per line");

    // APP on the command line beats the file's app.
    const named = await runCli(["-c", "tsgi.config.ts", "--print-config", "other.ts"], dir);
    assert.equal(JSON.parse(named.stdout).app, "other.ts");
  });
});

Deno.test('a deno.json "tsgi" section is used without --config, and --config FILE replaces it', async () => {
  const denoJson = JSON.stringify({ tasks: {}, tsgi: { workers: 3, logLevel: "warning" } });
  const other = JSON.stringify({ workers: 5 });
  await inFolder({ "deno.json": denoJson, "other.json": other }, async (dir) => {
    const found = await runCli(["--print-config"], dir);
    assert.equal(found.code, 0, found.stderr);
    assert.equal(JSON.parse(found.stdout).workers, 3);
    assert.equal(JSON.parse(found.stdout).logLevel, "warning");

    const explicit = await runCli(["--config", "other.json", "--print-config"], dir);
    assert.equal(JSON.parse(explicit.stdout).workers, 5);
    assert.equal(JSON.parse(explicit.stdout).logLevel, "info", "deno.json is not read then");

    const named = await runCli(["--config", `${dir}/deno.json`, "--print-config"], ROOT);
    assert.equal(JSON.parse(named.stdout).workers, 3);
  });
  // A deno.json without the section is not a config of ours, unless named.
  await inFolder({ "deno.json": JSON.stringify({ tasks: {} }) }, async (dir) => {
    const found = await runCli(["--print-config"], dir);
    assert.equal(JSON.parse(found.stdout).workers, 0);
    const named = await runCli(["--config", "deno.json", "--print-config"], dir);
    assert.equal(named.code, 2);
    assert.match(named.stderr, /--config: "deno.json" has no "tsgi" section/);
  });
});

Deno.test("a bad config file is one line naming the file and the key, status 2", async () => {
  const files = {
    "unknown.ts": tsModule(`{ workers: 1, keepalive: 5 }`),
    "bad_value.json": JSON.stringify({ maxBodySize: "lots" }),
    "no_default.ts": "export const workers = 2;\n",
    "throws.ts": 'throw new Error("config exploded");\n',
    "broken.json": "{ workers: 2 ",
    "cli_only.json": JSON.stringify({ printConfig: true }),
  };
  const cases: [string, RegExp][] = [
    ["unknown.ts", /^tsgi: unknown\.ts: unknown key "keepalive": did you mean "keepAlive"\?$/m],
    ["bad_value.json", /^tsgi: bad_value\.json: "maxBodySize": expected a size in bytes/m],
    ["no_default.ts", /--config: "no_default\.ts" has no default export/],
    ["throws.ts", /--config: cannot import "throws\.ts": .*config exploded/],
    ["broken.json", /--config: cannot parse "broken\.json"/],
    ["missing.ts", /--config: cannot read "missing\.ts": no such file/],
    ["cli_only.json", /cli_only\.json: unknown key "printConfig"/],
  ];
  await inFolder(files, async (dir) => {
    await Promise.all(cases.map(async ([file, expected]) => {
      const { code, stderr } = await runCli([HELLO, "--config", file, "--print-config"], dir);
      assert.equal(code, 2, `${file}: ${stderr}`);
      assert.match(stderr, expected);
      assert.ok(!/\n\s+at /.test(stderr), `no stack trace for ${file}: ${stderr}`);
    }));
  });
});

Deno.test("--check-config loads the settings and the app: 0, or 2 and the reason", async () => {
  const files = {
    "good.ts": tsModule(`{ app: ${JSON.stringify(HELLO)}, workers: 2 }`),
    "no_app.ts": tsModule(`{ workers: 2 }`),
    "bad_app.ts": tsModule(`{ app: ${JSON.stringify(`${ROOT}tests/fixtures/not_an_app.ts`)} }`),
    "bad_cert.ts": tsModule(
      `{ app: ${JSON.stringify(HELLO)}, certfile: "nope.pem", ` +
        `keyfile: "nope.pem" }`,
    ),
  };
  await inFolder(files, async (dir) => {
    const good = await runCli(["--config", "good.ts", "--check-config"], dir);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /config OK: tsgi app .*hello\.ts, settings from good\.ts/);

    const cases: [string[], RegExp][] = [
      [["--config", "no_app.ts"], /^tsgi: missing APP/],
      [["--config", "bad_app.ts"], /^tsgi: .*is not an app: expected a function/],
      [["--config", "bad_cert.ts"], /^tsgi: --certfile: cannot read "nope\.pem"/],
      [["--config", "good.ts", "--workers", "many"], /^tsgi: --workers: expected a whole number/],
    ];
    for (const [args, expected] of cases) {
      const { code, stderr } = await runCli([...args, "--check-config"], dir);
      assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
      assert.match(stderr, expected);
    }
    const broken = await runCli(["--config", "bad_app.ts", "--check-config"], dir);
    assert.equal(broken.stderr.trim().split("\n").length, 1, "the reason is one line");
  });
});

Deno.test("a config file drives a real pool: workers re-read it, a flag still wins", async () => {
  const file = tsModule(
    `{ app: ${JSON.stringify(ECHO)}, bind: ["127.0.0.1:0"], workers: 2, rootPath: "/file", ` +
      `accessLog: "off" }`,
  );
  await inFolder({ "tsgi.config.ts": file }, async (dir) => {
    for (const [extra, scriptName] of [[[], "/file"], [["--root-path", "/flag"], "/flag"]]) {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", MAIN, "-c", "tsgi.config.ts", ...extra],
        cwd: dir,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      let text = "";
      const logDone = (async () => {
        for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) text += chunk;
      })();
      try {
        await waitUntil("2 workers are ready", () => {
          return [...text.matchAll(/Worker \d+ \(pid \d+\) ready/g)].length === 2;
        });
        const url = /Listening on (http:\/\/\S+)/.exec(text)![1];
        for (let i = 0; i < 4; i++) {
          const response = await fetch(`${url}${scriptName}/x`, {
            headers: { Connection: "close" },
          });
          const echoed = await response.json();
          assert.equal(echoed.scriptName, scriptName);
          assert.equal(echoed.path, "/x");
        }
      } finally {
        child.kill("SIGTERM");
        assert.equal((await child.status).code, 0);
        await logDone;
      }
    }
  });
});
