// The children's permission flags: Deno's spelling taken on tsgi's command line and in a config
// file, checked, and merged with what a child needs into the flags it is run with.

import assert from "node:assert/strict";
import { parseCommandLine } from "../../src/cli/cli.ts";
import { permissionFlagsAsSetting } from "../../src/cli/permissions.ts";
import { ConfigError, settingFor } from "../../src/cli/settings.ts";
import {
  childPermissionFlags,
  parsePermissionFlag,
  parsePermissionFlags,
  PermissionFlagError,
  userCovers,
} from "../../src/process/permission_set.ts";

Deno.test("Deno's permission flags after APP become the permissions setting, in order", () => {
  const line = parseCommandLine([
    "app.ts",
    "--isolate",
    "request",
    "--allow-net=api.example.com",
    "--allow-read",
    "--deny-env=HOME",
    "-A",
    "--workers",
    "0",
  ]);
  assert.equal(line.app, "app.ts");
  assert.deepEqual(line.flags.permissions, [
    "--allow-net=api.example.com",
    "--allow-read",
    "--deny-env=HOME",
    "-A",
  ]);
  assert.equal(line.flags.isolate, "request");
  // After "--" they are the app's business, not ours.
  assert.deepEqual(permissionFlagsAsSetting(["--", "--allow-net"]), ["--", "--allow-net"]);
});

Deno.test("a misspelt permission flag is one line naming it", () => {
  for (
    const [flag, said] of [
      ["--allow-hrtime", /"--allow-hrtime" is not a Deno permission flag/],
      ["--allow-nett=x", /"--allow-nett=x" is not a Deno permission flag/],
      ["--allow-read=", /--allow-read=: expected a comma-separated list after "="/],
      ["--allow-read=/a,,/b", /expected a comma-separated list/],
    ] as const
  ) {
    assert.throws(() => parseCommandLine(["app.ts", flag]), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, said);
      assert.ok(!error.message.includes("\n"));
      return true;
    });
  }
});

Deno.test("in a config file, permissions is a list of flags checked the same way", () => {
  const setting = settingFor("permissions")!;
  assert.deepEqual(setting.parse(["--allow-net=a.example", "--deny-read=/etc"], "permissions"), [
    "--allow-net=a.example",
    "--deny-read=/etc",
  ]);
  assert.throws(() => setting.parse(["allow-net"], "permissions"), ConfigError);
  // The default, which a config file (a list may not be empty) and --print-config can spell.
  assert.deepEqual(setting.default, ["none"]);
  assert.deepEqual(setting.parse(["none"], "permissions"), ["none"]);
  assert.throws(() => setting.parse(["none", "--allow-net"], "permissions"), /stands alone/);
  assert.deepEqual(parsePermissionFlags(["none"]), []);
  const memory = settingFor("isolateMemory")!;
  assert.equal(memory.parse(["256M"], "isolate-memory"), 256 * 2 ** 20);
  assert.equal(memory.parse(["0"], "isolate-memory"), 0);
  assert.throws(() => memory.parse(["1M"], "isolate-memory"), /0 or a size of 64M or more/);
  assert.equal(memory.format!(memory.default), "512M");
});

Deno.test("parsePermissionFlag: kind, mode and list", () => {
  assert.deepEqual(parsePermissionFlag("--allow-read"), {
    mode: "allow",
    kind: "read",
    values: null,
  });
  assert.deepEqual(parsePermissionFlag("--deny-net=a:1, b"), {
    mode: "deny",
    kind: "net",
    values: ["a:1", "b"],
  });
  assert.deepEqual(parsePermissionFlag("--allow-all"), {
    mode: "allow",
    kind: "all",
    values: null,
  });
  assert.throws(() => parsePermissionFlag("--allow-scripts"), PermissionFlagError);
});

Deno.test("a child's flags: its own needs plus the user's, one flag per kind", () => {
  const base = { read: ["/app", "/cache"], net: ["unix:/s"] };
  const flags = (...raw: string[]) => childPermissionFlags(base, raw.map(parsePermissionFlag));
  assert.deepEqual(flags(), ["--allow-read=/app,/cache", "--allow-net=unix:/s"]);
  // Lists merge; Deno would keep only the last --allow-read=.
  assert.deepEqual(flags("--allow-read=/data", "--allow-env=A", "--allow-env=B"), [
    "--allow-read=/app,/cache,/data",
    "--allow-net=unix:/s",
    "--allow-env=A,B",
  ]);
  // A whole kind wins over lists; Deno would drop the whole grant beside a list.
  assert.deepEqual(flags("--allow-net=x", "--allow-net"), [
    "--allow-read=/app,/cache",
    "--allow-net",
  ]);
  assert.deepEqual(flags("--deny-read=/app/secret"), [
    "--allow-read=/app,/cache",
    "--allow-net=unix:/s",
    "--deny-read=/app/secret",
  ]);
  assert.deepEqual(flags("-A", "--deny-env"), ["--allow-all", "--deny-env"]);
});

Deno.test("userCovers: a grant of the user's that covers the socket is never revoked", () => {
  const covers = (raw: string, kind: "read" | "net") =>
    userCovers([parsePermissionFlag(raw)], kind, "/tmp/tsgi-x/frames.sock", "/srv");
  assert.ok(covers("--allow-read", "read"));
  assert.ok(covers("--allow-read=/tmp", "read"));
  assert.ok(covers("--allow-read=../tmp/", "read"));
  assert.ok(covers("--allow-read=/", "read"));
  assert.ok(!covers("--allow-read=/tmp/tsgi", "read"));
  assert.ok(!covers("--allow-read=/srv", "read"));
  assert.ok(!covers("--allow-net=example.com", "net"));
  assert.ok(covers("--allow-net", "net"));
  assert.ok(covers("-A", "net"));
});
