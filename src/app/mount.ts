// mount(): one app made of several, each under a path prefix, as WSGI URL maps do. The longest
// prefix that matches at a segment boundary wins, and moves from PATH_INFO to SCRIPT_NAME, so
// each app sees paths relative to where it is mounted and can build URLs with SCRIPT_NAME.

import { toTsgiApp } from "./fetch/to_tsgi.ts";
import type { App, FetchApp } from "../tsgi/types.ts";

const NOT_FOUND = new TextEncoder().encode("Not Found\n");

interface Mount {
  /** "" for "/", else "/api" form: a leading slash, no trailing one. */
  prefix: string;
  app: App;
}

/**
 * Dispatches by path prefix; 404 when no prefix matches. A fetch app (an object with
 * `fetch()`) may be mounted too: its Request's URL keeps the whole path, prefix included, as
 * Hono's `basePath()` expects.
 *
 * ```ts
 * import { mount, staticFiles } from "../mod.ts";
 * import api from "../apps/echo.ts";
 * export default mount({ "/api": api, "/": staticFiles("apps/public") });
 * // GET /api/users -> api with SCRIPT_NAME "/api", PATH_INFO "/users"
 * ```
 */
export function mount(apps: Record<string, App | FetchApp>): App {
  const mounts = Object.entries(apps).map(([prefix, app]) => toMount(prefix, app));
  // Longest first: "/api/v2" must win over "/api" for "/api/v2/x".
  mounts.sort((a, b) => b.prefix.length - a.prefix.length);
  return (environ, startResponse) => {
    const path = environ.PATH_INFO;
    for (const { prefix, app } of mounts) {
      if (!matches(path, prefix)) continue;
      return app({
        ...environ,
        SCRIPT_NAME: environ.SCRIPT_NAME + prefix,
        PATH_INFO: path.slice(prefix.length),
      }, startResponse);
    }
    startResponse("404 Not Found", [
      ["Content-Type", "text/plain; charset=utf-8"],
      ["Content-Length", String(NOT_FOUND.length)],
    ]);
    return [NOT_FOUND];
  };
}

function toMount(prefix: string, app: App | FetchApp): Mount {
  if (!prefix.startsWith("/")) {
    throw new TypeError(`mount(): prefix ${JSON.stringify(prefix)} must start with "/"`);
  }
  const trimmed = prefix.replace(/\/+$/, "");
  if (typeof app === "function") return { prefix: trimmed, app };
  if (typeof app?.fetch === "function") return { prefix: trimmed, app: toTsgiApp(app) };
  throw new TypeError(`mount(): ${JSON.stringify(prefix)} maps to ${typeof app}, not an app`);
}

/** "/api" matches "/api" and "/api/…", never "/apix". */
function matches(path: string, prefix: string): boolean {
  if (prefix === "") return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 0x2f;
}
