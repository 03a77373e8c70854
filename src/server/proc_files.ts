// This process's own /proc files (its descriptors, their epoll registrations), read through
// libc: Deno asks for --allow-all to read /proc/self or /proc/<own PID>/fd, which a process
// narrowed to the app's permissions does not have, while FFI it holds during its set-up.

import type { Libc } from "./libc.ts";

const O_RDONLY = 0;
/** struct dirent's d_name, after d_ino (8), d_off (8), d_reclen (2), d_type (1): 64-bit glibc. */
const D_NAME_OFFSET = 19;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function cString(text: string): Uint8Array {
  return encoder.encode(text + "\0");
}

/** The names in the folder at `path` ("." and ".." left out); throws when it cannot be read. */
export function listDirectory(c: Libc, path: string): string[] {
  const dir = c.opendir(cString(path));
  if (dir === null) throw new Error(`cannot list ${path}`);
  const names: string[] = [];
  try {
    for (let entry = c.readdir(dir); entry !== null; entry = c.readdir(dir)) {
      const name = new Deno.UnsafePointerView(entry).getCString(D_NAME_OFFSET);
      if (name !== "." && name !== "..") names.push(name);
    }
  } finally {
    c.closedir(dir);
  }
  return names;
}

/** Where the link at `path` points; throws when it is gone. */
export function readLink(c: Libc, path: string): string {
  const buffer = new Uint8Array(4096);
  const length = Number(c.readlink(cString(path), buffer, BigInt(buffer.length)));
  if (length < 0) throw new Error(`cannot read the link ${path}`);
  return decoder.decode(buffer.subarray(0, length));
}

/** The whole text of the (small) file at `path`; throws when it cannot be opened. */
export function readSmallFile(c: Libc, path: string): string {
  const fd = c.open(cString(path), O_RDONLY);
  if (fd < 0) throw new Error(`cannot open ${path}`);
  const chunks: Uint8Array[] = [];
  try {
    while (true) {
      const chunk = new Uint8Array(4096);
      const n = Number(c.read(fd, chunk, BigInt(chunk.length)));
      if (n <= 0) break;
      chunks.push(chunk.subarray(0, n));
    }
  } finally {
    c.close(fd);
  }
  return chunks.map((chunk) => decoder.decode(chunk, { stream: true })).join("") +
    decoder.decode();
}

/** This process's own folder in /proc, by PID (the same files as /proc/self). */
export function ownProc(): string {
  return `/proc/${Deno.pid}`;
}
