// The tsgi command as a user runs it: a real `deno run main.ts` child process.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";

const MAIN = fromFileUrl(new URL("../../main.ts", import.meta.url));
const ROOT = fromFileUrl(new URL("../..", import.meta.url));

async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

/** Starts the CLI serving an app, waits for its "Listening on" lines, returns their URLs. */
async function startCli(args: string[], binds = 1) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const urls: string[] = [];
  while (urls.length < binds) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`server exited before listening: ${text}`);
    text += value;
    urls.splice(
      0,
      urls.length,
      ...[...text.matchAll(/Listening on (http:\/\/\S+)/g)].map((m) => m[1]),
    );
  }
  const rest = (async () => {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return text;
      text += value;
    }
  })();
  return { child, urls, log: rest };
}

Deno.test("tsgi --help lists every option with its default", async () => {
  const { code, stdout } = await runCli(["--help"]);
  assert.equal(code, 0);
  for (
    const flag of [
      "--bind",
      "--keep-alive",
      "--header-timeout",
      "--graceful-timeout",
      "--limit-request-line",
      "--limit-request-fields",
      "--limit-request-field-size",
      "--max-body-size",
      "--access-log",
      "--log-level",
      "--root-path",
      "--version",
    ]
  ) {
    assert.ok(stdout.includes(flag), `${flag} in --help`);
  }
  assert.match(stdout, /default: 127\.0\.0\.1:8000/);
});

Deno.test("tsgi --version prints the version", async () => {
  const { code, stdout } = await runCli(["--version"]);
  assert.equal(code, 0);
  assert.match(stdout, /^tsgi \d+\.\d+\.\d+/);
});

Deno.test("tsgi refuses bad command lines with one clear line and status 2", async () => {
  const cases: [string[], RegExp][] = [
    [["apps/hello.ts", "--nope"], /unknown option '--nope'/],
    [["apps/hello.ts", "--keep-alive", "abc"], /--keep-alive: expected a number of seconds/],
    [["apps/hello.ts", "--bind", "localhost:99999"], /--bind: expected a port from 0 to 65535/],
    [["apps/hello.ts", "--log-level", "loud"], /--log-level: expected one of debug, info/],
    [["apps/hello.ts", "--max-body-size", "lots"], /--max-body-size: expected a size/],
    [
      ["apps/hello.ts", "--limit-request-line", "0"],
      /--limit-request-line: expected a whole number \(1 or more\)/,
    ],
    [["apps/hello.ts", "--root-path", "nope"], /--root-path: expected a path starting with \//],
    [[], /missing APP/],
    [["apps/missing.ts"], /App file not found: "apps\/missing.ts"/],
    [["tests/fixtures/not_an_app.ts"], /is not an app: expected a function/],
    [["tests/fixtures/named.ts"], /has no default export/],
    [["tests/fixtures/named.ts:nothing"], /has no export named "nothing"/],
    [["tests/fixtures/throws_at_import.ts"], /Cannot import .*database unreachable at import/],
  ];
  await Promise.all(cases.map(async ([args, expected]) => {
    const { code, stderr } = await runCli(args);
    assert.equal(code, 2, `exit status for ${args.join(" ")}`);
    assert.match(stderr, expected);
    assert.ok(!/\n\s+at /.test(stderr), `no stack trace for ${args.join(" ")}: ${stderr}`);
  }));
});

Deno.test("tsgi serves an app on every --bind and stops with status 0 on SIGTERM", async () => {
  const { child, urls, log } = await startCli(
    ["apps/hello.ts", "-b", "127.0.0.1:0", "--bind", "127.0.0.1:0", "--access-log", "off"],
    2,
  );
  try {
    assert.equal(urls.length, 2);
    for (const url of urls) {
      const response = await fetch(url);
      assert.equal(await response.text(), "Hello, World!\n");
    }
  } finally {
    child.kill("SIGTERM");
  }
  const status = await child.status;
  assert.equal(status.code, 0);
  assert.match(await log, /SIGTERM: stopping gracefully/);
});

Deno.test("tsgi serves named exports, TSGI and fetch apps alike", async () => {
  for (
    const [spec, expected] of [
      ["tests/fixtures/named.ts:api", "named app"],
      ["tests/fixtures/named.ts:fetchApp", "fetch app saw /some/path"],
    ]
  ) {
    const { child, urls } = await startCli([spec, "-b", "127.0.0.1:0", "--access-log", "off"]);
    try {
      const response = await fetch(urls[0] + "/some/path");
      assert.equal(await response.text(), expected);
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
  }
});
