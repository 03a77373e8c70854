// The Responses of a fetch app on the wire, whatever their body is made of: the ones Deno holds
// whole (string, bytes, ArrayBuffer, JSON, URLSearchParams) and Blobs leave in one piece with
// their length, the others (FormData, streams) through their stream, all with their headers.

import assert from "node:assert/strict";
import { toTsgiApp } from "../../src/app/fetch/to_tsgi.ts";
import { parseResponses, rawExchange, withServer } from "../support/server.ts";

const RESPONSES: Record<string, () => Response> = {
  "/text-201": () => new Response("made", { status: 201, headers: { "x-a": "1" } }),
  "/bytes": () => new Response(new Uint8Array([104, 105]), { headers: { "x-b": "2" } }),
  "/buffer": () => new Response(new Uint8Array([111, 107]).buffer, { status: 202 }),
  "/json": () => Response.json({ a: 1 }, { status: 409, statusText: "Clash" }),
  "/params": () => new Response(new URLSearchParams({ a: "1" }), { headers: { "x-c": "3" } }),
  "/blob": () => new Response(new Blob(["blob!"], { type: "text/html" }), { status: 203 }),
  "/big-blob": () => new Response(new Blob(Array(4).fill("b".repeat(50_000)))),
  "/empty": () => new Response(null, { status: 204, headers: { "x-d": "4" } }),
  "/touched": () => {
    const response = new Response("touched");
    response.headers.set("x-e", "5");
    return response;
  },
  "/form": () => {
    const form = new FormData();
    form.append("f", "v");
    return new Response(form);
  },
};

const EXPECTED: Record<string, [number, string, Record<string, string>]> = {
  "/text-201": [201, "made", { "x-a": "1", "content-type": "text/plain;charset=UTF-8" }],
  "/bytes": [200, "hi", { "x-b": "2" }],
  "/buffer": [202, "ok", {}],
  "/json": [409, '{"a":1}', { "content-type": "application/json" }],
  "/params": [200, "a=1", {
    "x-c": "3",
    "content-type": "application/x-www-form-urlencoded;charset=UTF-8",
  }],
  "/blob": [203, "blob!", { "content-type": "text/html" }],
  "/big-blob": [200, "b".repeat(200_000), {}],
  "/empty": [204, "", { "x-d": "4" }],
  "/touched": [200, "touched", { "x-e": "5", "content-type": "text/plain;charset=UTF-8" }],
};

Deno.test("fetch Response: each kind of body arrives whole with its status and headers", async () => {
  await withServer(
    toTsgiApp((request) => RESPONSES[new URL(request.url).pathname]()),
    async ({ url }) => {
      for (const [path, [status, body, headers]] of Object.entries(EXPECTED)) {
        const response = await fetch(url + path);
        assert.equal(response.status, status, path);
        assert.equal(await response.text(), body, path);
        for (const [name, value] of Object.entries(headers)) {
          assert.equal(response.headers.get(name), value, `${path}: ${name}`);
        }
      }
      const form = await (await fetch(url + "/form")).formData();
      assert.equal(form.get("f"), "v");
    },
  );
});

Deno.test("fetch Response: a whole body goes with Content-Length, with the app's reason phrase", async () => {
  await withServer(
    toTsgiApp((request) => RESPONSES[new URL(request.url).pathname]()),
    async ({ port }) => {
      const paths = [
        "/text-201",
        "/bytes",
        "/buffer",
        "/json",
        "/params",
        "/touched",
        "/blob",
        "/big-blob",
      ];
      const raw = await rawExchange(port, [
        paths.map((path) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`).join("") +
        "GET /bytes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      ]);
      assert.ok(raw.includes("HTTP/1.1 409 Clash\r\n"), "the app's own reason phrase");
      const responses = parseResponses(raw);
      assert.equal(responses.length, paths.length + 1);
      for (const [i, path] of paths.entries()) {
        const response = responses[i];
        assert.equal(response.headers["content-length"], String(EXPECTED[path][1].length), path);
        assert.equal(response.headers["transfer-encoding"], undefined, path);
        assert.equal(response.body, EXPECTED[path][1], path);
      }
    },
  );
});
