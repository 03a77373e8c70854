// Finding a util-linux program (setpriv, setsid) to start a child through: it changes
// something only a process can change for itself, before the command it then execs runs.

/** The folders looked in, before those of PATH. */
const KNOWN_DIRS = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"];

/** A program's path, or why there is none. */
export type Found = { path: string } | { missing: string };

const cache = new Map<string, Found>();

/**
 * The first `name` in `dirs` (default: the usual folders, then PATH) that runs and is
 * util-linux `minimum` or later. Looked up once per name and folders: it runs programs.
 */
export function findUtilLinux(
  name: string,
  minimum: readonly [number, number],
  dirs: readonly string[] = defaultDirs(),
): Found {
  const key = `${name} ${minimum.join(".")} ${dirs.join(":")}`;
  let found = cache.get(key);
  if (found === undefined) cache.set(key, found = lookUp(name, minimum, dirs));
  return found;
}

function lookUp(name: string, minimum: readonly [number, number], dirs: readonly string[]): Found {
  let missing = `util-linux's ${name} was not found`;
  for (const dir of dirs) {
    const path = `${dir}/${name}`;
    let output: Deno.CommandOutput;
    try {
      output = new Deno.Command(path, { args: ["--version"], stdin: "null", stderr: "null" })
        .outputSync();
    } catch {
      continue;
    }
    const version = /util-linux (\d+)\.(\d+)/.exec(new TextDecoder().decode(output.stdout));
    if (!output.success || version === null) continue;
    const [major, minor] = [Number(version[1]), Number(version[2])];
    if (major < minimum[0] || (major === minimum[0] && minor < minimum[1])) {
      missing = `${path} is util-linux ${major}.${minor}, older than ${minimum.join(".")}`;
      continue;
    }
    return { path };
  }
  return { missing };
}

function defaultDirs(): string[] {
  let path = "";
  try {
    path = Deno.env.get("PATH") ?? "";
  } catch {
    // No permission to read PATH: the usual folders only.
  }
  return [...new Set([...KNOWN_DIRS, ...path.split(":").filter((d) => d.startsWith("/"))])];
}
