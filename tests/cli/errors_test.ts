// The first minutes of a new user: every mistake gets one line that says what and where —
// the file, line and column of a syntax error, the frame an import failed at, the missing
// permissions all at once, a flag or key that is almost right.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";

const MAIN = fromFileUrl(new URL("../../main.ts", import.meta.url));

async function tsgi(denoFlags: string[], args: string[], cwd?: string) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...denoFlags, MAIN, ...args],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
}

async function withFiles(files: Record<string, string>, fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "tsgi-errors-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a syntax error in the app names its file, line and column", async () => {
  await withFiles(
    { "syntax.ts": "export default function app() {\n  return [1;\n" },
    async (dir) => {
      const { code, stderr } = await tsgi(["-A"], ["syntax.ts"], dir);
      assert.equal(code, 2);
      assert.match(
        stderr,
        /^tsgi: Cannot import "syntax\.ts": SyntaxError: .* \(at syntax\.ts:2:\d+\)$/m,
      );
    },
  );
});

Deno.test("an error thrown in a module the app imports names the frame; debug shows the stack", async () => {
  const files = {
    "app.ts": 'import "./db.ts";\nexport default () => [];\n',
    "db.ts": 'function connect() {\n  throw new Error("database unreachable");\n}\nconnect();\n',
  };
  await withFiles(files, async (dir) => {
    const plain = await tsgi(["-A"], ["app.ts"], dir);
    assert.match(plain.stderr, /Cannot import "app\.ts": database unreachable \(at db\.ts:2:9\)/);
    assert.doesNotMatch(plain.stderr, /at connect/);
    const debug = await tsgi(["-A"], ["app.ts", "--log-level", "debug"], dir);
    assert.match(debug.stderr, /at connect \(file:\/\/.*db\.ts:2:9\)/);
  });
});

Deno.test("without permission flags, one line names every flag tsgi needs", async () => {
  const { code, stderr } = await tsgi(
    [],
    ["apps/hello.ts"],
    fromFileUrl(new URL("../..", import.meta.url)),
  );
  assert.equal(code, 2);
  assert.equal(
    stderr.trim(),
    "tsgi: missing permissions: run deno with --allow-read --allow-net --allow-env (or -A)",
  );
});

Deno.test("with read but not run, workers are refused with the flag named", async () => {
  const { code, stderr } = await tsgi(
    ["--allow-read", "--allow-net", "--allow-env"],
    ["apps/hello.ts", "--workers", "2"],
    fromFileUrl(new URL("../..", import.meta.url)),
  );
  assert.equal(code, 2);
  assert.match(stderr, /missing permissions: run deno with --allow-run \(or -A\)/);
});

Deno.test("a file that exists but cannot be read is not 'not found'", async () => {
  await withFiles({ "app.ts": "export default () => [];\n" }, async (dir) => {
    const { stderr } = await tsgi(
      [`--allow-read=${Deno.cwd()}`, "--allow-net", "--allow-env"],
      [`${dir}/app.ts`],
    );
    assert.match(stderr, /No permission to read ".*app\.ts": run deno with --allow-read/);
  });
});

Deno.test("a flag or a config key that is almost right gets a suggestion", async () => {
  const root = fromFileUrl(new URL("../..", import.meta.url));
  const flag = await tsgi(["-A"], ["apps/hello.ts", "--worker", "2"], root);
  assert.match(flag.stderr, /unknown option '--worker': did you mean --workers\?/);
  await withFiles({ "c.json": '{ "port": 8000 }' }, async (dir) => {
    const key = await tsgi(["-A"], ["apps/hello.ts", "--config", `${dir}/c.json`], root);
    assert.match(key.stderr, /unknown key "port": did you mean "bind"\?/);
  });
});

Deno.test("an address in use is named", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    const root = fromFileUrl(new URL("../..", import.meta.url));
    const { code, stderr } = await tsgi(["-A"], ["apps/hello.ts", "-b", `127.0.0.1:${port}`], root);
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`cannot listen: 127\\.0\\.0\\.1:${port}: .*in use`));
  } finally {
    taken.close();
  }
});

Deno.test("--isolate request: a broken app is exit status 2 before anything is served, found by a child", async () => {
  await withFiles(
    { "syntax.ts": "export default function app() {\n  return [1;\n" },
    async (dir) => {
      const args = ["syntax.ts", "--isolate", "request", "--bind", "127.0.0.1:0"];
      const { code, stderr } = await tsgi(["-A"], args, dir);
      assert.equal(code, 2);
      assert.doesNotMatch(stderr, /Listening on/);
      assert.match(stderr, /\[child \d+\] Cannot load the app: .*SyntaxError/);
      assert.match(stderr, /^tsgi: the app could not be loaded \(in an isolated child/m);
    },
  );
});
