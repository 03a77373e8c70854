// Echoes the request back as JSON: method, path, query, headers and body (as UTF-8 text).
import type { Environ, StartResponse } from "../mod.ts";

export default async function echo(environ: Environ, startResponse: StartResponse) {
  const body = await environ["tsgi.input"].read();
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(environ)) {
    if (key.startsWith("HTTP_") || key === "CONTENT_TYPE" || key === "CONTENT_LENGTH") {
      headers[key] = String(value);
    }
  }
  const json = JSON.stringify({
    method: environ.REQUEST_METHOD,
    scriptName: environ.SCRIPT_NAME,
    path: environ.PATH_INFO,
    query: environ.QUERY_STRING,
    headers,
    body: new TextDecoder().decode(body),
    bodyLength: body.length,
  });
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [json];
}
