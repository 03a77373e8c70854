// Deno's permission flags for the app's children, spelled as Deno spells them
// (`--allow-net=api.example.com`, `--deny-read=/etc`): parsed and checked once on the command
// line or in a config file, then merged with what a child needs to start into the flags it is
// run with. Deno itself enforces them; tsgi only decides what to ask for.

/** The kinds of permission Deno knows, each with an --allow- and a --deny- flag. */
export const PERMISSION_KINDS = [
  "read",
  "write",
  "net",
  "env",
  "run",
  "sys",
  "ffi",
  "import",
] as const;

export type PermissionKind = typeof PERMISSION_KINDS[number];

/** One flag, parsed: `--allow-net=a,b` is allow, net, ["a", "b"]; a flag without `=` is all. */
export interface PermissionFlag {
  mode: "allow" | "deny";
  /** "all" for --allow-all (-A). */
  kind: PermissionKind | "all";
  /** The listed values; null when the flag names none (the whole kind). */
  values: string[] | null;
}

/** A flag that is not one of Deno's permission flags, or is spelled wrong. */
export class PermissionFlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PermissionFlagError";
  }
}

/**
 * The permissions setting's value when no flag is given: `["none"]`, no grant beyond a child's
 * defaults. (A config file's list may not be empty, and --print-config must print one.)
 */
export const NO_GRANTS = "none";

/** The flags of a permissions setting, parsed; "none" is no flag. */
export function parsePermissionFlags(raws: readonly string[]): PermissionFlag[] {
  return raws.filter((raw) => raw !== NO_GRANTS).map(parsePermissionFlag);
}

/** Whether `arg` looks like a permission flag at all (the CLI sets these aside for us). */
export function isPermissionFlag(arg: string): boolean {
  return arg === "-A" || /^--(allow|deny)-[a-z]+(=|$)/.test(arg);
}

/** Parses one flag as Deno spells it; throws PermissionFlagError saying what is wrong. */
export function parsePermissionFlag(raw: string): PermissionFlag {
  if (raw === "-A" || raw === "--allow-all") return { mode: "allow", kind: "all", values: null };
  const match = /^--(allow|deny)-([a-z]+)(?:=(.*))?$/s.exec(raw);
  if (match === null || !(PERMISSION_KINDS as readonly string[]).includes(match[2])) {
    throw new PermissionFlagError(
      `${JSON.stringify(raw)} is not a Deno permission flag (--allow-KIND[=LIST] or ` +
        `--deny-KIND[=LIST], KIND one of ${PERMISSION_KINDS.join(", ")}; or --allow-all)`,
    );
  }
  const [, mode, kind, list] = match;
  if (list === undefined) {
    return { mode: mode as "allow" | "deny", kind: kind as PermissionKind, values: null };
  }
  const values = list.split(",").map((v) => v.trim());
  if (values.some((v) => v === "")) {
    throw new PermissionFlagError(
      `${raw}: expected a comma-separated list after "=" (or no "=" for all of ${kind})`,
    );
  }
  return { mode: mode as "allow" | "deny", kind: kind as PermissionKind, values };
}

/** For each kind, nothing, all of it, or the listed values. */
type Grants = Map<PermissionKind, Set<string> | "all">;

/**
 * The flags a child is run with: `base` (what its own start needs) plus the user's `flags`.
 * Deno does not merge `--allow-read` with `--allow-read=/x` (the list wins), so each kind is
 * spelled once here: whole when any flag asks for the whole kind, else the union of the lists.
 */
export function childPermissionFlags(
  base: Partial<Record<PermissionKind, string[]>>,
  flags: readonly PermissionFlag[],
): string[] {
  if (flags.some((f) => f.kind === "all" && f.mode === "allow")) {
    return ["--allow-all", ...render("deny", collect(flags, "deny"))];
  }
  const allow: Grants = new Map();
  for (const kind of PERMISSION_KINDS) {
    if (base[kind] !== undefined) allow.set(kind, new Set(base[kind]));
  }
  return [
    ...render("allow", collect(flags, "allow", allow)),
    ...render("deny", collect(flags, "deny")),
  ];
}

function collect(
  flags: readonly PermissionFlag[],
  mode: "allow" | "deny",
  into: Grants = new Map(),
): Grants {
  for (const flag of flags) {
    if (flag.mode !== mode || flag.kind === "all") continue;
    const had = into.get(flag.kind);
    if (flag.values === null || had === "all") into.set(flag.kind, "all");
    else into.set(flag.kind, new Set([...(had ?? []), ...flag.values]));
  }
  return into;
}

function render(mode: "allow" | "deny", grants: Grants): string[] {
  const out: string[] = [];
  for (const kind of PERMISSION_KINDS) {
    const grant = grants.get(kind);
    if (grant === undefined) continue;
    out.push(grant === "all" ? `--${mode}-${kind}` : `--${mode}-${kind}=${[...grant].join(",")}`);
  }
  return out;
}

/**
 * Whether the user's flags grant `kind` for `path` themselves (all of the kind, or a folder
 * above it): then a grant of ours on that path must not be revoked, since Deno revokes the
 * covering grant with it.
 */
export function userCovers(
  flags: readonly PermissionFlag[],
  kind: PermissionKind,
  path: string,
  cwd: string,
): boolean {
  for (const flag of flags) {
    if (flag.mode !== "allow") continue;
    if (flag.kind === "all") return true;
    if (flag.kind !== kind) continue;
    if (flag.values === null) return true;
    for (const value of flag.values) {
      const bare = value.startsWith("unix:") ? value.slice(5) : value;
      const folder = normalize(bare.startsWith("/") ? bare : `${cwd}/${bare}`);
      if (folder === "/" || path === folder || path.startsWith(folder + "/")) return true;
    }
  }
  return false;
}

/** An absolute path without ".", ".." or doubled slashes (no symlinks resolved). */
function normalize(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return "/" + parts.join("/");
}

/** The values the user allows for `kind`: "all", or a list (empty when none). */
export function allowed(flags: readonly PermissionFlag[], kind: PermissionKind): string[] | "all" {
  const grant = collect(flags, "allow").get(kind);
  if (flags.some((f) => f.kind === "all" && f.mode === "allow") || grant === "all") return "all";
  return grant === undefined ? [] : [...grant];
}
