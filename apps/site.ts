// A site made of two apps: static files from apps/public/ at "/", and a small JSON API at
// "/api". `deno run -A main.ts apps/site.ts`, then open http://127.0.0.1:8000/.
import { fileURLToPath } from "node:url";
import { type App, mount, staticFiles } from "../mod.ts";

function json(startResponse: Parameters<App>[1], status: string, value: unknown): string[] {
  const body = JSON.stringify(value) + "\n";
  startResponse(status, [
    ["Content-Type", "application/json"],
    ["Content-Length", String(new TextEncoder().encode(body).length)],
  ]);
  return [body];
}

/** The API sees paths below its mount point: PATH_INFO "/time" for "/api/time". */
const api: App = (environ, startResponse) => {
  const query = new URLSearchParams(environ.QUERY_STRING);
  switch (environ.PATH_INFO) {
    case "/time":
      return json(startResponse, "200 OK", { now: new Date().toISOString() });
    case "/hello":
      return json(startResponse, "200 OK", { hello: query.get("name") ?? "world" });
    default:
      return json(startResponse, "404 Not Found", {
        error: `no route ${environ.SCRIPT_NAME}${environ.PATH_INFO}`,
      });
  }
};

const publicDir = fileURLToPath(new URL("./public/", import.meta.url));

export default mount({ "/api": api, "/": staticFiles(publicDir) });
