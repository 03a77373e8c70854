// The tsgi command: `deno run -A main.ts APP [options]`. All of it lives in src/cli/cli.ts; a
// per-request child (--isolate request) skips the CLI, since its start-up is each request's
// cost.
if (import.meta.main) {
  const { currentRole } = await import("./src/process/role.ts");
  if (currentRole() === "child") {
    const { runChildFromEnv } = await import("./src/isolate/child.ts");
    Deno.exit(await runChildFromEnv());
  }
  const { main } = await import("./src/cli/cli.ts");
  Deno.exit(await main(Deno.args));
}
