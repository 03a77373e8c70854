// Which part this process plays. One program runs as the server (or a pool's master), as a
// worker of a master, or as a per-request child; one environment variable, set by whoever
// starts the process, says which, so a compiled binary dispatches the same way.

/** The variable a parent sets on the process it starts. */
export const ROLE_ENV = "TSGI_ROLE";

/** What a process does: "main" when it was started by a person (no variable). */
export type Role = "main" | "worker" | "child";

/** This process's role. Without permission to read the environment it can only be "main". */
export function currentRole(): Role {
  let value: string | undefined;
  try {
    value = Deno.env.get(ROLE_ENV);
  } catch {
    return "main";
  }
  return value === "worker" || value === "child" ? value : "main";
}

/** The environment that starts a process in `role`. */
export function roleEnv(role: Exclude<Role, "main">): Record<string, string> {
  return { [ROLE_ENV]: role };
}
