// --reload: watches the app's folder and asks the master to replace its workers when source
// changes. The master does the rest as for HUP (src/master.ts): fresh worker processes import
// the new code, and an old worker only goes once a fresh one is ready, so a broken edit leaves
// the last good app serving.

import { dirname, extname, relative, resolve, sep } from "node:path";
import { parseAppSpec } from "../app/loader.ts";

/** Files whose change means new code. */
export const RELOAD_EXTENSIONS: ReadonlySet<string> = new Set([
  ".ts",
  ".tsx",
  ".mts",
  ".cts",
  ".js",
  ".jsx",
  ".mjs",
  ".cjs",
  ".json",
]);

/** Folders whose changes are not the app's own edits. */
const IGNORED_DIRS = ["node_modules", ".git", "dist"];

/** An editor saves in a burst of events (write, rename, chmod): one reload per burst. */
export const DEBOUNCE_MS = 150;

/** True for a path under `folder` whose change should reload the app. */
export function isSourceChange(path: string, folder: string): boolean {
  if (!RELOAD_EXTENSIONS.has(extname(path).toLowerCase())) return false;
  const parts = relative(folder, path).split(sep);
  return !parts.some((part) => IGNORED_DIRS.includes(part));
}

/** The folder --reload watches for an app spec: the one holding the app's file. */
export function watchedFolder(spec: string): string {
  return dirname(resolve(parseAppSpec(spec).path));
}

/**
 * Watches `folder` (recursively) and calls `onChange` with the changed file, at most once per
 * burst of changes, `debounceMs` after the burst's last event.
 *
 * ```ts
 * const watcher = watchSources("apps", (path) => console.log(`${path} changed`));
 * // … later:
 * watcher.close();
 * ```
 */
export function watchSources(
  folder: string,
  onChange: (path: string) => void,
  debounceMs = DEBOUNCE_MS,
): { close(): void } {
  const fsWatcher = Deno.watchFs(folder, { recursive: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  let changed = "";
  (async () => {
    try {
      for await (const event of fsWatcher) {
        if (event.kind === "access" || event.kind === "other") continue;
        const path = event.paths.find((p) => isSourceChange(p, folder));
        if (path === undefined) continue;
        changed = path;
        clearTimeout(timer);
        timer = setTimeout(() => onChange(changed), debounceMs);
      }
    } catch {
      // Closed, or the folder is gone: nothing more to watch.
    }
  })();
  return {
    close() {
      clearTimeout(timer);
      try {
        fsWatcher.close();
      } catch {
        // Closed already.
      }
    },
  };
}
