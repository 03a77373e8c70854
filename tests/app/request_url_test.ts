// The fetch Request's URL (src/app/fetch/request_url.ts) is spelled as `new Request(url).url`
// spells it, whether it takes the plain-target shortcut or the parser.

import assert from "node:assert/strict";
import { checkedBase, lazyUrl, urlOf } from "../../src/app/fetch/request_url.ts";
import { percentDecodePath } from "../../src/tsgi/environ.ts";
import type { Environ } from "../../src/tsgi/types.ts";

function environFor(target: string, host: string, scheme = "http"): Environ {
  const q = target.indexOf("?");
  const rawPath = q < 0 ? target : target.slice(0, q);
  return {
    REQUEST_METHOD: "GET",
    RAW_URI: target,
    SCRIPT_NAME: "",
    PATH_INFO: percentDecodePath(rawPath),
    QUERY_STRING: q < 0 ? "" : target.slice(q + 1),
    HTTP_HOST: host,
    SERVER_NAME: "127.0.0.1",
    SERVER_PORT: "8000",
    "tsgi.url_scheme": scheme,
  } as unknown as Environ;
}

function assertSpelledAsRequest(target: string, host = "example.com:8080", scheme = "http") {
  const environ = environFor(target, host, scheme);
  const expected = new Request(urlOf(environ)).url;
  assert.equal(lazyUrl(checkedBase(environ), environ), expected, `${scheme}://${host}${target}`);
}

Deno.test("request URL: targets the parser rewrites are rewritten the same way", () => {
  const targets = [
    "/",
    "/a/b?x=1&y=2",
    "/a/./b/../c",
    "/%2e%2E/x",
    "/.well-known/x",
    "/a b",
    "/q?a b'c\"d<e>",
    "/caf\u00e9",
    "/x?\u00e9",
    "/a\\b",
    "/a/%7e?%7E",
    "/a;b=c/d:e@f!$&'()*+,",
    "/{}|^`[]",
    "//double//slash",
    "/a/..",
    "/a/.",
    "/%zz?%",
  ];
  for (const target of targets) assertSpelledAsRequest(target);
});

Deno.test("request URL: the base is the URL's own spelling of scheme and authority", () => {
  assertSpelledAsRequest("/p", "EXAMPLE.com:80");
  assertSpelledAsRequest("/p", "example.com:443", "https");
  assertSpelledAsRequest("/p", "[::1]:8000");
  assertSpelledAsRequest("/p", "Example.COM");
  assertSpelledAsRequest("/p", "127.0.0.1:8000");
});

Deno.test("request URL: an authority no URL can hold is a 400", () => {
  for (const host of ["a:99999", "a b", "[::1"]) {
    assert.throws(() => checkedBase(environFor("/", host)), { status: 400 }, host);
  }
});

Deno.test("request URL: random targets are spelled as the parser spells them", () => {
  // What a request line may hold (no space, no #, ASCII only: the head parser refuses those).
  const alphabet = "ab/.?%2eE&=;:@!$'()*+,-_~\"<>[]\\^`{|}";
  let seed = 15;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 3000; i++) {
    let target = "/";
    const length = Math.floor(random() * 12);
    for (let j = 0; j < length; j++) target += alphabet[Math.floor(random() * alphabet.length)];
    assertSpelledAsRequest(target);
  }
});
