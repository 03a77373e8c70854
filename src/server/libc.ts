// The libc calls this server makes through FFI, where Deno has no API (descriptor limits,
// socket options, taking over a descriptor): one table, opened once. Where it cannot be opened
// (another OS, no --allow-ffi) callers get the reason, and each has a fallback of its own.

const SYMBOLS = {
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  dup3: { parameters: ["i32", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  execv: { parameters: ["buffer", "buffer"], result: "i32" },
  // This process's own /proc files (proc_files.ts).
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
} as const;

export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let library: Deno.DynamicLibrary<typeof SYMBOLS> | null = null;
let opened: Libc | null | undefined;
let missing = "";

/** libc's functions, or null; then `libcMissing()` says why. */
export function openLibc(): Libc | null {
  if (opened !== undefined) return opened;
  opened = null;
  if (Deno.build.os !== "linux") {
    missing = `not on Linux (${Deno.build.os})`;
    return opened;
  }
  for (const name of ["libc.so.6", "libc.so"]) {
    try {
      library = Deno.dlopen(name, SYMBOLS);
      opened = library.symbols;
      return opened;
    } catch (error) {
      missing = error instanceof Deno.errors.NotCapable
        ? "no FFI permission (--allow-ffi)"
        : `cannot load libc: ${error instanceof Error ? error.message : error}`;
    }
  }
  return opened;
}

/** Why openLibc() returned null. */
export function libcMissing(): string {
  return missing;
}

/**
 * Closes libc for good: a process that gives up FFI before it imports an app must not leave
 * the app a way back to it through this module (an import of it would find these symbols).
 */
export function forgetLibc(why: string): void {
  library?.close();
  library = null;
  opened = null;
  missing = why;
}
