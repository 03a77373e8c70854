// node:http peer for bench/run.ts: the same routes as apps/bench_app.ts, on 127.0.0.1 and the
// port given as the first argument. Prints the tsgi-style "Listening on" line when ready.
import { createServer } from "node:http";

const HELLO = Buffer.from("Hello, World!");
// Built once at load, as in apps/bench_app.ts.
const ONE_MIB = Buffer.alloc(1024 * 1024, 0x78);

function send(res, status, body) {
  res.writeHead(status, { "Content-Type": "text/plain", "Content-Length": body.length });
  res.end(body);
}

function countBody(req, res) {
  let total = 0;
  req.on("data", (chunk) => {
    total += chunk.length;
  });
  req.on("end", () => send(res, 200, Buffer.from(String(total))));
}

const server = createServer((req, res) => {
  const path = req.url.split("?", 1)[0];
  if (path === "/") return send(res, 200, HELLO);
  if (path === "/1m") return send(res, 200, ONE_MIB);
  if (path === "/upload") return countBody(req, res);
  return send(res, 404, Buffer.from("Not Found"));
});

const port = Number(process.argv[2] ?? "8000");
server.listen(port, "127.0.0.1", () => {
  console.error(`Listening on http://127.0.0.1:${server.address().port}`);
});
