// Red team: permission flags after APP with relative paths, the app's folder as the working
// directory (a common layout: app.ts, cert.pem, key.pem side by side). The set-up's grants
// named the paths as given: a relative unix: grant, which Deno refuses ("path must be
// absolute") so the narrowed process never started, and relative certificate paths that were
// not seen to be inside the app's folder, so giving them back revoked the folder too (Deno
// revokes a path's ancestors): "No permission to read app.ts", exit 2.

import assert from "node:assert/strict";
import { spawnLogged, waitForListen } from "../support/process.ts";
import { get, MAIN } from "../support/pool.ts";
import { hasOpenssl, makeCertificate } from "../support/tls.ts";

const APP = new URL("../../apps/hello.ts", import.meta.url);

/** Runs `main.ts app.ts ...args --allow-env=HOME` in `dir`; resolves once it listens. */
async function serveIn(dir: string, args: string[]) {
  Deno.copyFileSync(APP, `${dir}/app.ts`);
  const server = spawnLogged(
    Deno.execPath(),
    ["run", "-A", MAIN, "app.ts", ...args, "--allow-env=HOME"],
    { cwd: dir },
  );
  const [, where] = await waitForListen(server, /Listening on (\S+)/);
  return { server, where };
}

async function stop(server: { child: Deno.ChildProcess }): Promise<void> {
  server.child.kill("SIGINT");
  await server.child.status;
}

Deno.test("narrowed, a relative unix socket path binds and serves", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { server } = await serveIn(dir, ["--bind", "unix:s.sock"]);
    try {
      assert.equal(await get({ path: `${dir}/s.sock` }), "Hello, World!\n");
    } finally {
      await stop(server);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "narrowed, relative --certfile/--keyfile in the app's folder: the app still loads",
  ignore: !hasOpenssl(),
  async fn() {
    const dir = Deno.makeTempDirSync();
    try {
      await makeCertificate(dir); // cert.pem and key.pem, beside the app
      const { server, where } = await serveIn(dir, [
        "--bind",
        "127.0.0.1:0",
        "--certfile",
        "cert.pem",
        "--keyfile",
        "key.pem",
      ]);
      const client = Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(`${dir}/cert.pem`)] });
      try {
        const response = await fetch(where, { client });
        assert.equal(await response.text(), "Hello, World!\n");
      } finally {
        client.close();
        await stop(server);
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
