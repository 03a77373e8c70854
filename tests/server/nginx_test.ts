// tsgi behind a real nginx (Debian's nginx-light), as docs/deploy.md tells users to run it:
// a reverse proxy with upstream keep-alive over TCP and over a unix socket (requests, streaming,
// large uploads, forwarded headers), and nginx balancing two tsgi processes while one of them
// is stopped gracefully under load. Every process here is a real child: `deno run -A main.ts`
// and `nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'`, stopped by its PID at the end.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { hasOpenssl, makeCertificate } from "../support/tls.ts";

const MAIN = fromFileUrl(new URL("../../main.ts", import.meta.url));
const ROOT = fromFileUrl(new URL("../..", import.meta.url));
const APP = "tests/fixtures/nginx_app.ts";

/** The nginx binary: on PATH, or where Debian puts it (/usr/sbin is not on every PATH). */
const NGINX = ["nginx", "/usr/sbin/nginx"].find((candidate) => {
  try {
    return new Deno.Command(candidate, { args: ["-v"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
});
const SKIP = NGINX === undefined &&
  (console.log("skipped: nginx is not installed (Debian: apt-get install nginx-light)"), true);

// ---------------------------------------------------------------------------------------------
// The configuration. deployConfig() is what docs/deploy.md shows (a test below checks the
// document against it); wrapConfig() adds what a test run needs around it.

/** Where nginx terminates TLS: its certificate and key. */
interface NginxTls {
  cert: string;
  key: string;
}

/**
 * The upstream and server blocks a deployment uses: `servers` are the tsgi instances, `listen`
 * nginx's own address; `tls` makes it an HTTPS server; `extra` is test-only locations.
 */
function deployConfig(servers: string[], listen: string, extra = "", tls?: NginxTls): string {
  const ssl = tls ? `    ssl_certificate ${tls.cert};\n    ssl_certificate_key ${tls.key};\n` : "";
  return `upstream tsgi {
    ${servers.map((s) => `server ${s};`).join("\n    ")}
    keepalive 16;
    keepalive_timeout 4s;
}

server {
    listen ${listen};
${ssl}    client_max_body_size 64m;

    location / {
        proxy_pass http://tsgi;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_request_buffering off;
        proxy_next_upstream error timeout http_502;
    }
${extra}}
`;
}

/** Test-only locations: fixed forwarding headers, and none at all. */
const TEST_LOCATIONS = `
    location = /env-fixed {
        proxy_pass http://tsgi/env;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For 203.0.113.7;
        proxy_set_header X-Forwarded-Proto https;
    }

    location = /env-bare {
        proxy_pass http://tsgi/env;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For "";
        proxy_set_header X-Forwarded-Proto "";
    }
`;

/** A whole nginx.conf whose every file lives in `dir`; one process, so no user directive. */
function wrapConfig(dir: string, http: string): string {
  return `master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 512; }
http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;

${http}}
`;
}

// ---------------------------------------------------------------------------------------------
// Processes.

async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Stops a child by its PID: `signal`, then SIGKILL if it is still there after `graceMs`. */
async function stop(child: Deno.ChildProcess, signal: Deno.Signal, graceMs = 15_000) {
  try {
    child.kill(signal);
  } catch {
    // Already gone.
  }
  try {
    return await within(graceMs, `pid ${child.pid} to exit`, child.status);
  } catch {
    try {
      child.kill("SIGKILL");
    } catch {
      // Gone meanwhile.
    }
    return await child.status;
  }
}

interface Tsgi {
  child: Deno.ChildProcess;
  /** "http://127.0.0.1:PORT" or "unix:/path". */
  address: string;
  /** Everything on its stderr so far (the error log). */
  log(): string;
  /** Resolves when stderr closes. */
  closed: Promise<void>;
}

/** Starts `deno run -A main.ts` on the fixture app, waits for its "Listening on" line. */
async function startTsgi(args: string[]): Promise<Tsgi> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, APP, "--access-log", "off", ...args],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  let listening = (_address: string) => {};
  const ready = new Promise<string>((resolve) => (listening = resolve));
  const closed = (async () => {
    for await (const piece of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += piece;
      const match = text.match(/Listening on (\S+)/);
      if (match) listening(match[1]);
    }
  })();
  const exited = child.status.then((s) => {
    throw new Error(`tsgi exited (${s.code}) before listening: ${text}`);
  });
  try {
    const address = await within(30_000, "tsgi to listen", Promise.race([ready, exited]));
    exited.catch(() => {});
    return { child, address, log: () => text, closed };
  } catch (error) {
    exited.catch(() => {});
    await stop(child, "SIGKILL");
    await closed;
    throw error;
  }
}

async function stopTsgi(tsgi: Tsgi): Promise<Deno.CommandStatus> {
  const status = await stop(tsgi.child, "SIGTERM");
  await tsgi.closed;
  return status;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

interface Nginx {
  child: Deno.ChildProcess;
  url: string;
  dir: string;
}

/** Writes `dir`/nginx.conf, starts nginx in the foreground, polls until it answers. */
async function startNginx(dir: string, port: number, http: string): Promise<Nginx> {
  await Deno.writeTextFile(`${dir}/nginx.conf`, wrapConfig(dir, http));
  const child = new Deno.Command(NGINX!, {
    args: ["-p", `${dir}/`, "-c", `${dir}/nginx.conf`, "-g", "daemon off;"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  child.status.then(() => (exited = true));
  const deadline = Date.now() + 10_000;
  while (true) {
    if (exited) {
      const log = await Deno.readTextFile(`${dir}/error.log`).catch(() => "(no error.log)");
      throw new Error(`nginx exited at startup: ${log}`);
    }
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return { child, url: `http://127.0.0.1:${port}`, dir };
    } catch {
      if (Date.now() > deadline) {
        await stop(child, "SIGKILL");
        throw new Error("nginx did not answer within 10 s");
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Clients.

interface EnvReport {
  remoteAddr: string;
  host: string | null;
  scheme: string;
  xForwardedFor: string | null;
  xForwardedProto: string | null;
  pid: number;
  connection: number | null;
  connections: number;
}

async function getJson<T>(url: string, client?: Deno.HttpClient): Promise<T> {
  const response = await fetch(url, { client });
  const text = await response.text();
  assert.equal(response.status, 200, `${url}: ${text}`);
  return JSON.parse(text) as T;
}

/** `size` bytes of a cheap pseudo-random sequence (xorshift), so corruption cannot hide. */
function payload(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  const words = new Uint32Array(bytes.buffer, 0, size >>> 2);
  let x = 2463534242;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return bytes;
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Everything one proxy test checks through `nginx`: `peer` is the REMOTE_ADDR tsgi gives when
 * no forwarding header is sent ("127.0.0.1" over TCP, "" over a unix socket).
 */
async function checkThroughProxy(nginx: Nginx, peer: string): Promise<void> {
  const client = Deno.createHttpClient({});
  try {
    // Many requests, four at a time on keep-alive client connections.
    const reports: EnvReport[] = [];
    await Promise.all([0, 1, 2, 3].map(async () => {
      for (let i = 0; i < 50; i++) {
        reports.push(await getJson<EnvReport>(`${nginx.url}/env`, client));
      }
    }));
    assert.equal(reports.length, 200);
    for (const report of reports) {
      assert.equal(report.remoteAddr, "127.0.0.1", "REMOTE_ADDR from X-Forwarded-For");
      // The client's Host with its port (docs/deploy.md: `$http_host`, not `$host`).
      assert.equal(report.host, new URL(nginx.url).host);
      assert.equal(report.scheme, "http");
      assert.equal(report.xForwardedFor, "127.0.0.1");
      assert.equal(report.xForwardedProto, "http");
    }
    // Upstream keep-alive: nginx reused its connections to tsgi instead of one per request.
    const connections = Math.max(...reports.map((r) => r.connections));
    assert.ok(connections <= 20, `200 requests came over ${connections} upstream connections`);

    // Forwarded headers are what sets REMOTE_ADDR and the scheme: fixed ones show through...
    const fixed = await getJson<EnvReport>(`${nginx.url}/env-fixed`, client);
    assert.equal(fixed.remoteAddr, "203.0.113.7");
    assert.equal(fixed.scheme, "https");
    // ...and without them tsgi sees only its peer.
    const bare = await getJson<EnvReport>(`${nginx.url}/env-bare`, client);
    assert.equal(bare.remoteAddr, peer);
    assert.equal(bare.scheme, "http");
    assert.equal(bare.xForwardedFor, null);

    // apps/stream.ts: 50 lines 10 ms apart, arriving in pieces rather than all at the end.
    const streamed = await fetch(`${nginx.url}/stream?n=50`, { client });
    assert.equal(streamed.status, 200);
    let text = "";
    let reads = 0;
    for await (const piece of streamed.body!.pipeThrough(new TextDecoderStream())) {
      text += piece;
      reads++;
    }
    const lines = Array.from({ length: 50 }, (_, i) => `line ${i + 1} of 50\n`).join("");
    assert.equal(text, lines);
    assert.ok(reads >= 3, `the stream came in ${reads} reads`);

    // A body that cannot finish until the client has seen its first chunk: proof that nginx
    // and tsgi pass each chunk on as it is written.
    const gated = await fetch(`${nginx.url}/gated`, { client });
    const reader = gated.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("first\n")) {
      const { done, value } = await within(5000, "the first chunk", reader.read());
      assert.ok(!done, `the stream ended before its first chunk: ${seen}`);
      seen += value;
    }
    assert.equal(seen, "first\n", "only the first chunk before the gate opens");
    await getJson(`${nginx.url}/release`, client);
    for (let r = await reader.read(); !r.done; r = await reader.read()) seen += r.value;
    assert.equal(seen, "first\nsecond\n");

    // A 20 MB upload, with Content-Length and chunked, reaches the app intact.
    const body = payload(20 * 1024 * 1024);
    const expected = await sha256(body);
    const sized = await fetch(`${nginx.url}/upload`, { method: "POST", body, client });
    const sizedReport = JSON.parse(await sized.text());
    assert.equal(sized.status, 200);
    assert.equal(sizedReport.length, body.length);
    assert.equal(sizedReport.sha256, expected);
    let offset = 0;
    const chunkedBody = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (offset >= body.length) return controller.close();
        controller.enqueue(body.slice(offset, offset + 100_000));
        offset += 100_000;
      },
    });
    const chunked = await fetch(`${nginx.url}/upload`, {
      method: "POST",
      body: chunkedBody,
      client,
    });
    const chunkedReport = JSON.parse(await chunked.text());
    assert.equal(chunked.status, 200);
    assert.equal(chunkedReport.length, body.length);
    assert.equal(chunkedReport.sha256, expected);
  } finally {
    client.close();
  }
}

/** Runs `fn` with a fresh temp dir, nginx and tsgi processes it starts all stopped after. */
async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tsgi-nginx-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Tests.

Deno.test({
  name: "nginx proxies to tsgi over TCP with upstream keep-alive: requests, streaming, " +
    "20 MB uploads, forwarded headers",
  ignore: SKIP,
  async fn() {
    await withTempDir(async (dir) => {
      const [trusting, distrusting] = await Promise.all([
        startTsgi(["-b", "127.0.0.1:0"]),
        startTsgi(["-b", "127.0.0.1:0", "--forwarded-allow-ips", "192.0.2.1"]),
      ]);
      let nginx: Nginx | undefined;
      try {
        const port = freePort();
        const other = freePort();
        const host = (t: Tsgi) => t.address.replace("http://", "");
        nginx = await startNginx(
          dir,
          port,
          deployConfig([host(trusting)], `127.0.0.1:${port}`, TEST_LOCATIONS) +
            // The same site again on another port, to a tsgi that trusts only 192.0.2.1.
            deployConfig([host(distrusting)], `127.0.0.1:${other}`, TEST_LOCATIONS)
              .replaceAll("tsgi", "distrusting"),
        );
        await checkThroughProxy(nginx, "127.0.0.1");

        // From a peer it does not trust, tsgi leaves REMOTE_ADDR and the scheme alone.
        const untrusted = await getJson<EnvReport>(`http://127.0.0.1:${other}/env-fixed`);
        assert.equal(untrusted.remoteAddr, "127.0.0.1");
        assert.equal(untrusted.scheme, "http");
        assert.equal(untrusted.xForwardedFor, "203.0.113.7", "passed through as a plain header");
        assert.equal(untrusted.xForwardedProto, "https");
      } finally {
        if (nginx) await stop(nginx.child, "SIGTERM");
        assert.equal((await stopTsgi(trusting)).code, 0);
        assert.equal((await stopTsgi(distrusting)).code, 0);
      }
    });
  },
});

Deno.test({
  name: "nginx proxies to tsgi over a unix socket with upstream keep-alive: requests, " +
    "streaming, 20 MB uploads, forwarded headers",
  ignore: SKIP,
  async fn() {
    await withTempDir(async (dir) => {
      const socket = `${dir}/tsgi.sock`;
      // A unix peer is trusted whatever --forwarded-allow-ips says: only local processes the
      // socket's mode lets in can connect.
      const tsgi = await startTsgi(["-b", `unix:${socket}`, "--forwarded-allow-ips", "192.0.2.1"]);
      let nginx: Nginx | undefined;
      try {
        assert.equal(tsgi.address, `unix:${socket}`);
        const port = freePort();
        nginx = await startNginx(
          dir,
          port,
          deployConfig([`unix:${socket}`], `127.0.0.1:${port}`, TEST_LOCATIONS),
        );
        await checkThroughProxy(nginx, "");
      } finally {
        if (nginx) await stop(nginx.child, "SIGTERM");
        assert.equal((await stopTsgi(tsgi)).code, 0);
      }
      assert.throws(() => Deno.lstatSync(socket), Deno.errors.NotFound, "socket removed");
    });
  },
});

Deno.test({
  name: "nginx balancing two tsgi processes: one stopped with SIGTERM under load, no request " +
    "fails and it finishes what it accepted",
  ignore: SKIP,
  async fn() {
    await withTempDir(async (dir) => {
      const [a, b] = await Promise.all([
        startTsgi(["-b", "127.0.0.1:0", "--graceful-timeout", "10"]),
        startTsgi(["-b", "127.0.0.1:0", "--graceful-timeout", "10"]),
      ]);
      let nginx: Nginx | undefined;
      const client = Deno.createHttpClient({});
      try {
        const port = freePort();
        const host = (t: Tsgi) => t.address.replace("http://", "");
        nginx = await startNginx(dir, port, deployConfig([host(a), host(b)], `127.0.0.1:${port}`));
        const pidA = a.child.pid;
        const pidB = b.child.pid;

        // Steady load: four keep-alive loops of GET /slow?ms=20 through nginx, bounded in time
        // and count.
        let running = true;
        const loadDeadline = Date.now() + 20_000;
        const served: { pid: number; at: number }[] = [];
        const failures: string[] = [];
        const loops = [0, 1, 2, 3].map(async () => {
          for (let i = 0; running && i < 2000 && Date.now() < loadDeadline; i++) {
            try {
              const response = await fetch(`${nginx!.url}/slow?ms=20`, { client });
              const text = await response.text();
              if (response.status !== 200) failures.push(`${response.status} ${text}`);
              else served.push({ pid: JSON.parse(text).pid, at: Date.now() });
            } catch (error) {
              failures.push(String(error));
            }
          }
        });
        const until = (check: () => boolean, ms: number, what: string) =>
          within(
            ms,
            what,
            (async () => {
              while (!check()) await new Promise((resolve) => setTimeout(resolve, 10));
            })(),
          );

        // Both serve before the stop.
        await until(
          () => served.some((s) => s.pid === pidA) && served.some((s) => s.pid === pidB),
          10_000,
          "both instances to serve",
        );
        await until(() => served.length >= 100, 10_000, "100 requests before the stop");

        // A request A has accepted and is working on when SIGTERM comes: it must be answered.
        const inFlight = fetch(`${a.address}/slow?ms=700&say=1`, { client }).then(async (r) => ({
          status: r.status,
          body: await r.text(),
          at: Date.now(),
        }));
        await until(() => a.log().includes("slow request started"), 10_000, "A to take it");
        const servedBefore = served.length;
        const stoppedAt = Date.now();
        a.child.kill("SIGTERM");
        const statusA = await within(15_000, "A to stop gracefully", a.child.status);
        const stoppedAfter = Date.now() - stoppedAt;
        const slow = await inFlight;

        // Load goes on for another 200 requests (all on B once A is gone), then stops.
        await until(() => served.length >= servedBefore + 200, 10_000, "load after the stop");
        running = false;
        await within(10_000, "the load loops to finish", Promise.all(loops));
        await a.closed;

        const errorLog = await Deno.readTextFile(`${dir}/error.log`);
        const retried = errorLog.split("\n").filter((l) => /\[error\].*upstream/.test(l)).length;
        const lateA = served.filter((s) => s.pid === pidA && s.at >= stoppedAt).length;
        console.log(
          `graceful stop under load: ${served.length} requests, ${failures.length} failed; ` +
            `${lateA} answered by A after its SIGTERM, besides the 700 ms one; ` +
            `A exited ${statusA.code} ${stoppedAfter} ms after SIGTERM; ` +
            `${retried} upstream errors nginx retried on B`,
        );
        assert.deepEqual(failures, [], "no request failed");
        assert.equal(statusA.code, 0, `A exits 0: ${a.log()}`);
        assert.match(a.log(), /SIGTERM: stopping gracefully/);
        assert.equal(slow.status, 200, "the request A was serving at SIGTERM was answered");
        assert.equal(JSON.parse(slow.body).pid, pidA);
        assert.ok(slow.at >= stoppedAt);
        assert.ok(
          served.filter((s) => s.at > stoppedAt + stoppedAfter).every((s) => s.pid === pidB),
          "after A is gone every request is served by B",
        );
      } finally {
        client.close();
        if (nginx) await stop(nginx.child, "SIGTERM");
        await stopTsgi(a);
        assert.equal((await stopTsgi(b)).code, 0);
      }
    });
  },
});

Deno.test({
  name: "nginx terminating TLS: tsgi behind it sees tsgi.url_scheme https from X-Forwarded-Proto",
  ignore: SKIP || (!hasOpenssl() && (console.log("skipped: openssl is not installed"), true)),
  async fn() {
    await withTempDir(async (dir) => {
      const tls = await makeCertificate(dir);
      const tsgi = await startTsgi(["-b", "127.0.0.1:0"]);
      let nginx: Nginx | undefined;
      const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(tls.cert)] });
      try {
        const port = freePort();
        const upstream = tsgi.address.replace("http://", "");
        nginx = await startNginx(
          dir,
          port,
          deployConfig([upstream], `127.0.0.1:${port} ssl`, "", tls),
        );
        const report = await getJson<EnvReport>(`https://127.0.0.1:${port}/env`, client);
        assert.equal(report.scheme, "https");
        assert.equal(report.remoteAddr, "127.0.0.1");
        assert.equal(report.xForwardedProto, "https");
        const body = payload(1024 * 1024);
        const upload = await fetch(`https://127.0.0.1:${port}/upload`, {
          method: "POST",
          body,
          client,
        });
        assert.equal(upload.status, 200);
        assert.equal(JSON.parse(await upload.text()).sha256, await sha256(body));
      } finally {
        client.close();
        if (nginx) await stop(nginx.child, "SIGTERM");
        assert.equal((await stopTsgi(tsgi)).code, 0);
      }
    });
  },
});

Deno.test("docs/deploy.md shows the nginx configuration these tests run", async () => {
  const doc = await Deno.readTextFile(new URL("../../docs/deploy.md", import.meta.url));
  assert.ok(
    doc.includes(deployConfig(["127.0.0.1:8000"], "80")),
    "the TCP variant is in docs/deploy.md",
  );
  assert.ok(
    doc.includes(deployConfig(["unix:/run/tsgi/tsgi.sock"], "80")),
    "the unix socket variant is in docs/deploy.md",
  );
  assert.ok(
    doc.includes(deployConfig(["127.0.0.1:8001", "127.0.0.1:8002"], "80")),
    "the two-instance variant is in docs/deploy.md",
  );
  const tls = { cert: "/etc/ssl/certs/example.org.pem", key: "/etc/ssl/private/example.org.key" };
  assert.ok(
    doc.includes(deployConfig(["127.0.0.1:8000"], "443 ssl", "", tls)),
    "the TLS variant is in docs/deploy.md",
  );
});

for (const pool of [[], ["--workers", "2"]]) {
  Deno.test({
    name: `nginx: POSTs go on while each tsgi${pool.length ? " pool" : ""} behind it restarts ` +
      "with SIGTERM, and none fails (nginx cannot retry a POST: a connection closed under it, " +
      "idle or queued, would be a 502)",
    ignore: SKIP,
    async fn() {
      await withTempDir(async (dir) => {
        const ports = [freePort(), freePort()];
        const start = (port: number) =>
          // --keep-alive 10: twice nginx's 4 s, so that its idle timer, late on a starved
          // machine, still closes first (that race is the idle timeout's, not the stop's).
          startTsgi([
            "-b",
            `127.0.0.1:${port}`,
            "--graceful-timeout",
            "10",
            "--keep-alive",
            "10",
            ...pool,
          ]);
        const instances = await Promise.all(ports.map(start));
        let nginx: Nginx | undefined;
        const client = Deno.createHttpClient({});
        try {
          const port = freePort();
          // max_fails=0: a refused connect (an instance restarting) is retried on the other,
          // and does not take the instance out of rotation for fail_timeout.
          const upstreams = ports.map((p) => `127.0.0.1:${p} max_fails=0`);
          nginx = await startNginx(dir, port, deployConfig(upstreams, `127.0.0.1:${port}`));
          let running = true;
          let posted = 0;
          const failures: string[] = [];
          const body = payload(512);
          const loops = Array.from({ length: 8 }, async () => {
            for (let i = 0; running && i < 20_000; i++) {
              try {
                const response = await fetch(`${nginx!.url}/upload`, {
                  method: "POST",
                  body,
                  client,
                });
                await response.arrayBuffer();
                if (response.status !== 200) failures.push(String(response.status));
                else posted++;
              } catch (error) {
                failures.push(String(error));
              }
            }
          });
          // Four restarts of each instance, one at a time, under the load.
          for (let round = 0; round < 4; round++) {
            for (const which of [0, 1]) {
              const before = posted;
              await within(
                15_000,
                `300 more POSTs (${posted} so far)`,
                (async () => {
                  while (posted < before + 300) await new Promise((r) => setTimeout(r, 5));
                })(),
              );
              assert.equal((await stopTsgi(instances[which])).code, 0);
              instances[which] = await start(ports[which]);
            }
          }
          running = false;
          await within(20_000, "the load loops to finish", Promise.all(loops));
          console.log(
            `POSTs across 8 graceful restarts: ${posted} answered, ${failures.length} failed`,
          );
          const errors = (await Deno.readTextFile(`${dir}/error.log`)).split("\n")
            .filter((line) => line.includes("[error]"));
          // Before the stop kept idle connections and emptied the queue first: 24–62 failed a
          // run. Under the whole suite's load one or two may still meet a race of the kernel's
          // or nginx's; more than that is the regression this test is for.
          assert.ok(
            failures.length <= 2,
            `${failures.length} POSTs failed (${failures.slice(0, 3)}); nginx said:\n${
              errors.join("\n")
            }`,
          );
        } finally {
          client.close();
          if (nginx) await stop(nginx.child, "SIGTERM");
          for (const instance of instances) await stopTsgi(instance);
        }
      });
    },
  });
}
