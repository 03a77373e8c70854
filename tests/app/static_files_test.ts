// staticFiles(): files under a temporary root through a real server; traversal attempts over
// raw TCP, ranges, conditional requests, HEAD, and symlinks that lead outside the root.

import assert from "node:assert/strict";
import { join } from "node:path";
import { mount } from "../../src/app/mount.ts";
import { staticFiles } from "../../src/app/static_files.ts";
import {
  parseResponses,
  rawExchange,
  type RawResponse,
  waitFor,
  withServer,
} from "../support/server.ts";

const SECRET = "TOP SECRET outside the root";
const TEXT = "0123456789abcdefghij";

/** A temp dir: `root/` served, `secret.txt` and `outside/` beside it, links out of the root. */
async function withSite(fn: (root: string, tmp: string) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "tsgi_static_" });
  const root = join(tmp, "root");
  try {
    await Deno.mkdir(join(root, "sub"), { recursive: true });
    await Deno.mkdir(join(root, "empty"));
    await Deno.mkdir(join(tmp, "outside"));
    await Deno.writeTextFile(join(tmp, "secret.txt"), SECRET);
    await Deno.writeTextFile(join(tmp, "outside", "secret.txt"), SECRET);
    await Deno.writeTextFile(join(root, "index.html"), "<h1>home</h1>");
    await Deno.writeTextFile(join(root, "a.txt"), TEXT);
    await Deno.writeTextFile(join(root, "sub", "style.css"), "body{}");
    await Deno.writeTextFile(join(root, "sub", "index.html"), "sub index");
    await Deno.writeTextFile(join(root, "%2e%2e"), "a file named %2e%2e");
    await Deno.writeTextFile(join(root, "blank.bin"), "");
    await Deno.symlink(join(tmp, "secret.txt"), join(root, "link-out.txt"));
    await Deno.symlink(join(tmp, "outside"), join(root, "link-dir"));
    await Deno.symlink(join(root, "a.txt"), join(root, "link-in.txt"));
    await fn(root, tmp);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

async function request(port: number, target: string, headers = "", method = "GET") {
  const out = await rawExchange(port, [
    `${method} ${target} HTTP/1.1\r\nHost: x\r\n${headers}Connection: close\r\n\r\n`,
  ]);
  return { out, response: parseResponses(out, method === "HEAD" ? 1 : 0)[0] as RawResponse };
}

Deno.test("staticFiles() refuses every way out of the root (a table of encodings)", async () => {
  const attempts = [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/.%2e/secret.txt",
    "/%2e./secret.txt",
    "/sub/../../secret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/..%5csecret.txt",
    "/%2e%2e%5c%2e%2e%5csecret.txt",
    "/..\\secret.txt",
    "/%252e%252e/secret.txt",
    "/%252e%252e%252fsecret.txt",
    "/%00/../secret.txt",
    "/a.txt%00.html",
    "/sub/..%00/secret.txt",
    "/%c0%ae%c0%ae/secret.txt",
    "/%u002e%u002e/secret.txt",
    "/..;/secret.txt",
    "/.../secret.txt",
    "/./../secret.txt",
    "/../../../../../../../../etc/passwd",
    "//etc/passwd",
    "/link-out.txt",
    "/link-dir/secret.txt",
    "/link-dir/",
    "/link-dir/%2e%2e/secret.txt",
    "http://x/../secret.txt",
    "http://x/%2e%2e/secret.txt",
  ];
  await withSite(async (root) => {
    await withServer(staticFiles(root), async ({ port }) => {
      for (const target of attempts) {
        const { out, response } = await request(port, target);
        assert.ok(
          response.status === 400 || response.status === 404,
          `${target}: ${response.status}`,
        );
        assert.ok(!out.includes(SECRET), `${target} leaked the file outside the root`);
      }
    });
  });
});

Deno.test("staticFiles() decodes once: %252e%252e names a file called %2e%2e", async () => {
  await withSite(async (root) => {
    await withServer(staticFiles(root), async ({ port }) => {
      const { response } = await request(port, "/%252e%252e");
      assert.equal(response.status, 200);
      assert.equal(response.body, "a file named %2e%2e");
      assert.equal(
        (await request(port, "/link-in.txt")).response.body,
        TEXT,
        "links inside are ok",
      );
    });
  });
});

Deno.test("staticFiles() serves files with type, length, validators; directories by index", async () => {
  await withSite(async (root) => {
    await withServer(staticFiles(root), async ({ port }) => {
      const { response } = await request(port, "/a.txt");
      assert.equal(response.status, 200);
      assert.equal(response.body, TEXT);
      assert.equal(response.headers["content-type"], "text/plain; charset=utf-8");
      assert.equal(response.headers["content-length"], String(TEXT.length));
      assert.equal(response.headers["accept-ranges"], "bytes");
      assert.match(response.headers.etag, /^"[0-9a-z]+-[0-9a-z]+"$/);
      assert.match(response.headers["last-modified"], /^\w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT$/);
      const css = (await request(port, "/sub/style.css")).response;
      assert.equal(css.headers["content-type"], "text/css; charset=utf-8");
      assert.equal((await request(port, "/")).response.body, "<h1>home</h1>");
      const bare = (await request(port, "/sub?x=1")).response;
      assert.equal(bare.status, 301, "a directory without its slash is sent to it");
      assert.equal(bare.headers.location, "/sub/?x=1");
      assert.equal((await request(port, "/sub/")).response.body, "sub index");
      assert.equal((await request(port, "/empty/")).response.status, 404);
      assert.equal((await request(port, "/missing.txt")).response.status, 404);
      const blank = (await request(port, "/blank.bin")).response;
      assert.equal(blank.status, 200);
      assert.equal(blank.headers["content-type"], "application/octet-stream");
      assert.equal(blank.headers["content-length"], "0");
    });
  });
});

Deno.test("staticFiles() answers HEAD with GET's headers and 405 with Allow for others", async () => {
  await withSite(async (root) => {
    await withServer(staticFiles(root), async ({ port }) => {
      const { out, response } = await request(port, "/a.txt", "", "HEAD");
      assert.equal(response.status, 200);
      assert.equal(response.headers["content-length"], String(TEXT.length));
      assert.ok(!out.includes(TEXT));
      for (const method of ["POST", "PUT", "DELETE", "OPTIONS"]) {
        const refused = (await request(port, "/a.txt", "Content-Length: 0\r\n", method)).response;
        assert.equal(refused.status, 405, method);
        assert.equal(refused.headers.allow, "GET, HEAD");
      }
    });
  });
});

Deno.test("staticFiles() answers 304 to If-None-Match and If-Modified-Since", async () => {
  await withSite(async (root) => {
    await withServer(staticFiles(root), async ({ port }) => {
      const first = (await request(port, "/a.txt")).response;
      const etag = first.headers.etag;
      const lastModified = first.headers["last-modified"];
      const cases: [string, number][] = [
        [`If-None-Match: ${etag}\r\n`, 304],
        [`If-None-Match: "other", W/${etag}\r\n`, 304],
        [`If-None-Match: *\r\n`, 304],
        [`If-None-Match: "other"\r\n`, 200],
        [`If-Modified-Since: ${lastModified}\r\n`, 304],
        [`If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n`, 200],
        [`If-Modified-Since: not a date\r\n`, 200],
        // If-None-Match wins when both are sent (RFC 9110 §13.1.3).
        [`If-None-Match: "other"\r\nIf-Modified-Since: ${lastModified}\r\n`, 200],
      ];
      for (const [headers, status] of cases) {
        const { response } = await request(port, "/a.txt", headers);
        assert.equal(response.status, status, headers);
        if (status === 304) {
          assert.equal(response.body, "");
          assert.equal(response.headers.etag, etag);
        }
      }
    });
  });
});

Deno.test("staticFiles() serves single byte ranges with 206, and 416 when unsatisfiable", async () => {
  await withSite(async (root) => {
    await withServer(staticFiles(root), async ({ port }) => {
      const size = TEXT.length;
      const partial: [string, string, string][] = [
        ["bytes=0-4", "01234", `bytes 0-4/${size}`],
        ["bytes=10-", TEXT.slice(10), `bytes 10-19/${size}`],
        ["bytes=-3", "hij", `bytes 17-19/${size}`],
        ["bytes=5-1000", TEXT.slice(5), `bytes 5-19/${size}`],
        ["bytes=-100", TEXT, `bytes 0-19/${size}`],
      ];
      for (const [range, body, contentRange] of partial) {
        const { response } = await request(port, "/a.txt", `Range: ${range}\r\n`);
        assert.equal(response.status, 206, range);
        assert.equal(response.body, body, range);
        assert.equal(response.headers["content-range"], contentRange);
        assert.equal(response.headers["content-length"], String(body.length));
      }
      for (const range of ["bytes=20-", "bytes=100-200", "bytes=-0"]) {
        const { response } = await request(port, "/a.txt", `Range: ${range}\r\n`);
        assert.equal(response.status, 416, range);
        assert.equal(response.headers["content-range"], `bytes */${size}`);
      }
      for (const range of ["bytes=0-1,5-6", "bytes=5-2", "items=0-1", "bytes=a-b"]) {
        const { response } = await request(port, "/a.txt", `Range: ${range}\r\n`);
        assert.equal(response.status, 200, range);
        assert.equal(response.body, TEXT);
      }
      const etag = (await request(port, "/a.txt")).response.headers.etag;
      const current = await request(port, "/a.txt", `Range: bytes=0-1\r\nIf-Range: ${etag}\r\n`);
      assert.equal(current.response.status, 206);
      const stale = await request(port, "/a.txt", `Range: bytes=0-1\r\nIf-Range: "old"\r\n`);
      assert.equal(stale.response.status, 200);
    });
  });
});

Deno.test("staticFiles() streams a large file in chunks and closes it when the client leaves", {
  ignore: Deno.build.os !== "linux", // Open files are counted through /proc/self/fd.
}, async () => {
  await withSite(async (root) => {
    const big = join(root, "big.bin");
    const data = new Uint8Array(8 * 1024 * 1024).map((_, i) => i % 253);
    await Deno.writeFile(big, data);
    const openCount = () => {
      let n = 0;
      for (const entry of Deno.readDirSync("/proc/self/fd")) {
        try {
          if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`) === big) n++;
        } catch {
          // Closed while we looked.
        }
      }
      return n;
    };
    await withServer(staticFiles(root, { chunkSize: 16 * 1024 }), async ({ url, port }) => {
      const whole = new Uint8Array(await (await fetch(url + "/big.bin")).arrayBuffer());
      assert.equal(whole.length, data.length);
      assert.deepEqual(whole.subarray(1_000_000, 1_000_100), data.subarray(1_000_000, 1_000_100));
      assert.ok(await waitFor(() => openCount() === 0), "closed after a whole response");
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new TextEncoder().encode("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"));
      await conn.read(new Uint8Array(1024));
      assert.ok(openCount() > 0, "the file is open while it is being sent");
      conn.close();
      assert.ok(await waitFor(() => openCount() === 0), "closed after the client went away");
    });
  });
});

Deno.test("staticFiles() refuses a root that is not a directory, and an unknown dotfiles value", () => {
  assert.throws(() => staticFiles("/no/such/dir"), /is not a directory/);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => staticFiles(".", { dotfiles: "ignore" as any }), /"deny" or "allow"/);
});

const DOT_SECRET = "DB_PASSWORD=hunter2";

/** A root holding dotfiles and dot-directories, a link to one, and a `.well-known/`. */
async function withDotfiles(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "tsgi_dotfiles_" });
  try {
    for (const dir of [".git", "sub/.hidden", ".well-known", "sub/.well-known", ".private"]) {
      await Deno.mkdir(join(root, dir), { recursive: true });
    }
    await Deno.writeTextFile(join(root, ".env"), DOT_SECRET);
    await Deno.writeTextFile(join(root, ".git", "config"), DOT_SECRET);
    await Deno.writeTextFile(join(root, "sub", ".hidden", "x"), DOT_SECRET);
    await Deno.writeTextFile(join(root, ".private", "index.html"), DOT_SECRET);
    await Deno.writeTextFile(join(root, ".well-known", ".secret"), DOT_SECRET);
    await Deno.writeTextFile(join(root, "sub", ".well-known", "x"), DOT_SECRET);
    await Deno.writeTextFile(join(root, ".well-known", "security.txt"), "Contact: a@b.c");
    await Deno.writeTextFile(join(root, "visible.txt"), "visible");
    await Deno.symlink(join(root, ".env"), join(root, "env-link.txt"));
    await Deno.symlink(join(root, ".git"), join(root, "git-link"));
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("staticFiles() answers 404 for dotfiles and dot-directories, however they are reached", async () => {
  const hidden = [
    "/.env",
    "/%2eenv",
    "/%2Eenv",
    "/./.env",
    "//.env",
    "/sub/./../.env", // 400: `..` is refused before anything else
    "/.git/config",
    "/.git/",
    "/.git",
    "/%2egit/config",
    "/sub/.hidden/x",
    "/sub/.hidden/",
    "/.private/",
    "/.private",
    "/env-link.txt",
    "/git-link/config",
    "/.well-known/.secret",
    "/sub/.well-known/x",
    "/.missing",
  ];
  await withDotfiles(async (root) => {
    await withServer(staticFiles(root), async ({ port }) => {
      for (const target of hidden) {
        for (const method of ["GET", "HEAD"]) {
          const { out, response } = await request(port, target, "", method);
          const expected = target.includes("..") ? 400 : 404;
          assert.equal(response.status, expected, `${method} ${target}`);
          assert.ok(!out.includes(DOT_SECRET), `${method} ${target} leaked a dotfile`);
        }
      }
      assert.equal((await request(port, "/visible.txt")).response.body, "visible");
      const wellKnown = (await request(port, "/.well-known/security.txt")).response;
      assert.equal(wellKnown.status, 200, "/.well-known/ at the root is served");
      assert.equal(wellKnown.body, "Contact: a@b.c");
    });
  });
});

Deno.test('staticFiles({ dotfiles: "allow" }) serves dotfiles like any other file', async () => {
  await withDotfiles(async (root) => {
    await withServer(staticFiles(root, { dotfiles: "allow" }), async ({ port }) => {
      for (
        const target of ["/.env", "/.git/config", "/sub/.hidden/x", "/env-link.txt", "/.private/"]
      ) {
        const { response } = await request(port, target);
        assert.equal(response.status, 200, target);
        assert.equal(response.body, DOT_SECRET, target);
      }
      assert.equal((await request(port, "/.well-known/security.txt")).response.status, 200);
    });
  });
});

Deno.test("staticFiles() mounted at /static sends /static to /static/, where its links resolve", async () => {
  await withSite(async (root) => {
    await withServer(mount({ "/static": staticFiles(root) }), async ({ port }) => {
      const bare = (await request(port, "/static")).response;
      assert.equal(bare.status, 301);
      assert.equal(bare.headers.location, "/static/");
      assert.equal((await request(port, "/static/")).response.body, "<h1>home</h1>");
      assert.equal((await request(port, "/static/a.txt")).response.body, TEXT);
    });
  });
});
