// The smallest TSGI app: a fixed greeting with its length, so it goes out in one write.
import type { Environ, StartResponse } from "../mod.ts";

const GREETING = new TextEncoder().encode("Hello, World!\n");

export default function hello(_environ: Environ, startResponse: StartResponse) {
  startResponse("200 OK", [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(GREETING.length)],
  ]);
  return [GREETING];
}
