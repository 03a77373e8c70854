// Deno's permission flags on tsgi's command line (`app.ts --isolate request --allow-net=x`):
// they keep Deno's own spelling, whose value is optional (`--allow-read` or
// `--allow-read=/data`), which node's parseArgs cannot take. So they are set aside before it
// runs, each as the value of the `permissions` setting, and checked like any other setting.

import { isPermissionFlag } from "../process/permission_set.ts";

/**
 * `args` with each Deno permission flag spelled as the `permissions` setting
 * (`--allow-net=x` becomes `--permissions=--allow-net=x`). Nothing after `--` is touched.
 */
export function permissionFlagsAsSetting(args: readonly string[]): string[] {
  const out: string[] = [];
  let positional = false;
  for (const arg of args) {
    if (arg === "--") positional = true;
    out.push(!positional && isPermissionFlag(arg) ? `--permissions=${arg}` : arg);
  }
  return out;
}
