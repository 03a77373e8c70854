// The tsgi command: `deno run -A main.ts APP [options]`. All of it lives in src/cli.ts.
import { main } from "./src/cli.ts";

if (import.meta.main) Deno.exit(await main(Deno.args));
