// The Deno flags this process was started with (`deno run --config deno.json --env-file … -A
// main.ts APP`), so that every process tsgi starts — workers, --reload's workers, a USR2
// successor — runs with the user's import map, lock file, env file and permissions too. Deno
// has no API for them; on Linux the process's own command line is in /proc/self/cmdline.

/** Flags that take their value as the next argument (`deno run --help`, 2.9). */
const VALUE_FLAGS = new Set([
  "--ext",
  "--import-map",
  "--node-modules-linker",
  "-c",
  "--config",
  "--cert",
  "--min-dep-age",
  "--inspect-publish-uid",
  "--location",
  "--seed",
  "--preload",
  "--require",
  "--conditions",
  "-L",
  "--log-level",
]);

/** Flags that belong to the first process alone: a second debugger or watcher would clash. */
const FIRST_PROCESS_ONLY =
  /^--(inspect|inspect-brk|inspect-wait|watch|watch-hmr|watch-exclude)(=|$)/;

/**
 * The runtime flags of `deno run` found in `argv` (a whole command line: the binary, "run",
 * flags, the module, its arguments); null when it is not a `deno run` command line.
 */
export function runFlagsOf(argv: string[]): string[] | null {
  return splitRunCommand(argv)?.flags ?? null;
}

/**
 * A `deno run` command line in two: the runtime flags (those of the first process alone left
 * out) and the rest (the module and its arguments); null when it is not one.
 */
export function splitRunCommand(argv: string[]): { flags: string[]; rest: string[] } | null {
  if (argv[1] !== "run") return null;
  const flags: string[] = [];
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--" || !arg.startsWith("-")) return { flags, rest: argv.slice(i) };
    const takesValue = VALUE_FLAGS.has(arg) && i + 1 < argv.length;
    if (!FIRST_PROCESS_ONLY.test(arg)) {
      flags.push(arg);
      if (takesValue) flags.push(argv[i + 1]);
    }
    if (takesValue) i++;
  }
  return null;
}

let cached: string[] | null | undefined;

/**
 * This process's whole command line (the binary, its subcommand, flags, module, arguments);
 * null where it cannot be read (not Linux, no read permission on /proc).
 */
export function ownCommandLine(): string[] | null {
  try {
    // NUL-terminated arguments: the last split piece is the empty one after the last NUL.
    return Deno.readTextFileSync("/proc/self/cmdline").split("\0").slice(0, -1);
  } catch {
    return null;
  }
}

/**
 * This process's `deno run` flags; null where they cannot be read (not Linux, no read
 * permission on /proc, a compiled binary or another subcommand). Read once.
 */
export function ownRunFlags(): string[] | null {
  if (cached !== undefined) return cached;
  const argv = ownCommandLine();
  cached = argv === null ? null : runFlagsOf(argv);
  return cached;
}
