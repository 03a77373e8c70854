// Red team: --isolate request started by systemd socket activation. The handed socket is
// descriptor 3, inheritable (systemd's, sd_listen_fds(3)); the master used to start its warm
// children and its group guard (/bin/sh) before it adopted the socket, so every one of them held
// the server's listening socket as its descriptor 3. A child allowed to run a program
// (--allow-run=python3, say) passed it on, and that program could accept() other clients'
// connections (their requests, cookies, credentials) and answer them itself.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { childrenOf, spawnLogged, tsgiArgs, waitUntil } from "../support/process.ts";
import { hasPython, ROOT } from "../support/pool.ts";

const ACTIVATE = fromFileUrl(new URL("../fixtures/systemd_activate.py", import.meta.url));

/** The inode of the socket listening on 127.0.0.1:`port`, from /proc/net/tcp. */
function listeningInode(port: number): string {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === `0100007F:${hex}` && f[3] === "0A") return f[9];
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

/** The descriptors of `pid` that are the socket `inode`. */
function holding(pid: number, inode: string): string[] {
  const held: string[] = [];
  try {
    for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        if (Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`) === `socket:[${inode}]`) {
          held.push(entry.name);
        }
      } catch {
        // Closed meanwhile.
      }
    }
  } catch {
    // Gone.
  }
  return held;
}

Deno.test({
  name: "--isolate request under socket activation: no child, nor the guard, holds the socket",
  ignore: !(await hasPython()),
  async fn() {
    const { child, log: err, out, logDone: reading } = spawnLogged("python3", [
      ACTIVATE,
      Deno.execPath(),
      ...tsgiArgs("apps/hello.ts", "--isolate", "request", "--allow-run=true"),
      "--access-log",
      "off",
    ], { cwd: ROOT, stdout: "piped" });
    try {
      await waitUntil("it listens", () => /Listening on/.test(err()));
      const port = Number(/port (\d+)/.exec(out())![1]);
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "Hello, World!\n");
      const inode = listeningInode(port);
      // The warm children and the guard are up by now: the request above was served by one.
      await waitUntil("the master has its guard and a warm child", () => {
        const kids = childrenOf(child.pid);
        return kids.some((p) => p.comm === "sh") && kids.some((p) => p.comm === "deno");
      });
      const holders = childrenOf(child.pid)
        .map((p) => ({ ...p, fds: holding(p.pid, inode) }))
        .filter((p) => p.fds.length > 0);
      assert.deepEqual(holders, [], "children of the master holding the listening socket");
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await reading;
    }
  },
});
