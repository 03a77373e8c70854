// A user's own project: run in a folder with a deno.json, tsgi uses that deno.json — its import
// map, lock file, compiler options — rather than tsgi's own or the copy `deno install` made of
// it. Deno picks a config by the main module's folder, which is tsgi's; so, where the config in
// effect is not the project's, this process replaces itself (execv through FFI, the same PID, so
// a supervisor or systemd sees nothing) with the same command plus `--config ./deno.json`.

import { ownCommandLine, splitRunCommand } from "../process/runtime_flags.ts";
import { replaceProcess } from "../process/reexec.ts";

const TSGI_CONFIG = new URL("../../deno.json", import.meta.url).pathname;
/** Where `deno install` keeps its copy of the installed program's config: …/bin/.NAME/. */
const INSTALLED_COPY = /\/bin\/\.[^/]+\/deno\.jsonc?$/;

/** The project's config file in `cwd`, or null. */
export function projectConfig(cwd: string): string | null {
  for (const name of ["deno.json", "deno.jsonc"]) {
    try {
      if (Deno.statSync(`${cwd}/${name}`).isFile) return `${cwd}/${name}`;
    } catch {
      // Not there.
    }
  }
  return null;
}

/**
 * The command line to run instead, with the project's config; null when the one in effect is
 * right already: given on purpose (another file), or the project's own.
 */
export function withProjectConfig(argv: string[], project: string): string[] | null {
  const split = splitRunCommand(argv);
  const flags = split?.flags ?? null;
  // In tsgi's own folder, the config Deno found is the one it would get.
  if (split === null || flags === null || project === TSGI_CONFIG) return null;
  const at = flags.findIndex((f) => f === "--config" || f === "-c" || /^--config=/.test(f));
  const given = at < 0
    ? null
    : flags[at].startsWith("--config=")
    ? flags[at].slice(9)
    : flags[at + 1];
  if (given !== null && !isTsgiOwn(given, project)) return null;
  const kept: string[] = [];
  for (let i = 0; i < flags.length; i++) {
    if (i === at) {
      if (!flags[i].includes("=")) i++;
      continue;
    }
    if (flags[i] !== "--no-config") kept.push(flags[i]);
  }
  return [argv[0], "run", ...kept, "--config", project, ...split.rest];
}

function isTsgiOwn(config: string, project: string): boolean {
  if (config === project) return false;
  return config === TSGI_CONFIG || INSTALLED_COPY.test(config);
}

/**
 * Replaces this process with itself run on the project's config, when it should. Returns only
 * when it should not, or could not (then with a line saying why, for the log).
 */
export function useProjectConfig(): string {
  if (Deno.build.standalone) return "";
  let project: string | null;
  try {
    project = projectConfig(Deno.cwd());
  } catch {
    return "";
  }
  const argv = project === null ? null : ownCommandLine();
  if (project === null || argv === null) return "";
  const next = withProjectConfig(argv, project);
  if (next === null) return "";
  const failed = replaceProcess(next);
  return `${project} is not used (${failed}): run deno with --config ${project}`;
}
