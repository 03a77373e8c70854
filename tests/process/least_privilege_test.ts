// The flags a narrowed serving process starts with (src/process/least_privilege.ts).

import assert from "node:assert/strict";
import {
  exposedKeyLine,
  narrowedRunFlags,
  type SetUpGrants,
  widenedGrantsLine,
} from "../../src/process/least_privilege.ts";
import { parsePermissionFlags } from "../../src/process/permission_set.ts";

const GRANTS: SetUpGrants = {
  setUp: { read: ["/proc"], write: [], net: ["127.0.0.1:8000"], env: ["TSGI_ROLE"], ffi: true },
  keptRead: ["/srv/app"],
};

Deno.test("the process's own permission flags go; its other flags stay; no empty list", () => {
  const own = [
    "-A",
    "--config",
    "deno.json",
    "-R",
    "--allow-net=x",
    "--no-prompt",
    "--unstable-net",
  ];
  const flags = narrowedRunFlags(own, GRANTS, parsePermissionFlags(["--allow-env=HOME"]));
  assert.deepEqual(flags, [
    "--config",
    "deno.json",
    "--unstable-net",
    "--no-prompt",
    "--allow-read=/srv/app,/proc",
    "--allow-net=127.0.0.1:8000",
    "--allow-env=TSGI_ROLE,HOME",
    "--allow-ffi",
  ]);
});

Deno.test("the user's lists join the set-up's; a whole kind stays whole; -A is -A", () => {
  const user = parsePermissionFlags(["--allow-read=/data", "--allow-net", "--deny-env=SECRET"]);
  const flags = narrowedRunFlags([], GRANTS, user);
  assert.ok(flags.includes("--allow-read=/srv/app,/proc,/data"));
  assert.ok(flags.includes("--allow-net"));
  assert.ok(flags.includes("--deny-env=SECRET"));
  assert.deepEqual(narrowedRunFlags([], GRANTS, parsePermissionFlags(["-A"])), [
    "--no-prompt",
    "--allow-all",
  ]);
});

Deno.test("an --allow-ffi list is all of FFI, and the log says so", () => {
  const user = parsePermissionFlags(["--allow-ffi=./libx.so"]);
  const flags = narrowedRunFlags([], GRANTS, user);
  assert.ok(flags.includes("--allow-ffi"));
  assert.ok(!flags.some((f) => f.startsWith("--allow-ffi=")));
  assert.match(widenedGrantsLine(user)!, /--allow-ffi=\.\/libx\.so is all of FFI/);
  assert.equal(widenedGrantsLine(parsePermissionFlags(["--allow-ffi"])), null);
});

Deno.test("a TLS key in the app's folder is named in a warning; one elsewhere is not", () => {
  const line = exposedKeyLine("/srv/app/app.ts", ["/srv/app/cert.pem", "/etc/tls/key.pem"]);
  assert.match(line!, /^\/srv\/app\/cert\.pem is in the app's folder \(\/srv\/app\)/);
  assert.equal(exposedKeyLine("/srv/app/app.ts", ["/etc/tls/cert.pem", ""]), null);
  assert.equal(exposedKeyLine(null, ["/srv/app/cert.pem"]), null);
});
