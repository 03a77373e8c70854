// A body produced by an async generator with no Content-Length: it goes out chunked on
// HTTP/1.1 (or until close on 1.0), each line as soon as it is made.
import type { Environ, StartResponse } from "../mod.ts";

export default function stream(environ: Environ, startResponse: StartResponse) {
  const count = Math.min(Number(new URLSearchParams(environ.QUERY_STRING).get("n") ?? 5), 1000);
  startResponse("200 OK", [["Content-Type", "text/plain; charset=utf-8"]]);
  return (async function* () {
    for (let i = 1; i <= count; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      yield `line ${i} of ${count}\n`;
    }
  })();
}
