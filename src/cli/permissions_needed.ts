// The Deno permissions tsgi itself needs, checked before anything else runs, so that a user
// who forgot them reads one line naming them all instead of the first failure's stack. Each is
// asked for narrowly, so that a user who grants exactly what is needed is not refused.

type Need = { flag: string; query: () => Deno.PermissionDescriptor };

/** What serving takes: files under the working directory, a socket, tsgi's own variables. */
const TO_SERVE: Need[] = [
  { flag: "--allow-read", query: () => ({ name: "read", path: Deno.cwd() }) },
  { flag: "--allow-net", query: () => ({ name: "net", host: "127.0.0.1" }) },
  { flag: "--allow-env", query: () => ({ name: "env", variable: "TSGI_ROLE" }) },
];
/** What starting workers or children takes: running this program again. */
const TO_SPAWN: Need = {
  flag: "--allow-run",
  query: () => ({ name: "run", command: Deno.execPath() }),
};

/** The one line naming what is missing (with `spawns`, to start processes too); "" if none. */
export function missingPermissionsLine(spawns: boolean): string {
  const needs = spawns ? [...TO_SERVE, TO_SPAWN] : TO_SERVE;
  const missing = needs.filter((need) =>
    Deno.permissions.querySync(need.query()).state !== "granted"
  );
  if (missing.length === 0) return "";
  return `missing permissions: run deno with ${missing.map((m) => m.flag).join(" ")} (or -A)` +
    (spawns ? "; workers and isolated children get the same flags" : "");
}
