// The kernel's bound on a child's memory (--isolate-memory): a memory cgroup of its own, made
// under this process's cgroup. V8's heap limit alone does not hold: ArrayBuffers and native
// memory live outside the heap, and RLIMIT_AS or RLIMIT_DATA cannot be used at all (Deno
// reserves tens of gigabytes of address space at start, and dies with any lower limit). A child
// that passes its cgroup's limit is killed by the kernel (SIGKILL), and its cgroup's counter
// says so. What the child starts is in the cgroup too, and is killed with it at the end.
// All of it runs off the main thread (the async file calls): the master serves meanwhile.
//
// cgroup v1's memory controller is used, where this process may make cgroups under its own
// (root, or a delegated hierarchy). cgroup v2 needs the master moved into a leaf cgroup first
// (no process may sit in a cgroup whose children have controllers) and is not done yet.

import { isAlive } from "../process/liveness.ts";

/** One child's cgroup. */
export interface ChildCgroup {
  /**
   * Once the child is reaped (`killed`: by SIGKILL): whether the kernel killed something in
   * its cgroup for passing the limit. Kills what is left in it; then it is free again.
   */
  end(killed: boolean): Promise<boolean>;
}

/** Where children's cgroups are made, or why they cannot be. */
export type MemoryCgroups = { cgroups: CgroupParent } | { missing: string };

/** A process may take a moment to leave its cgroup after SIGKILL. */
const RELEASE_TRIES = 40;
const RELEASE_WAIT_MS = 50;

/**
 * Opens (makes) the parent of the children's cgroups: `tsgi-<pid>` under this process's own.
 * `othersMayStay`: whether children may start processes (see CgroupParent).
 */
export function openMemoryCgroups(othersMayStay: boolean): MemoryCgroups {
  let own: string | null;
  try {
    own = ownMemoryCgroupV1();
  } catch (error) {
    return { missing: `cannot read /proc/self/cgroup (${messageOf(error)})` };
  }
  if (own === null) {
    return {
      missing: "no cgroup v1 memory controller is mounted (cgroup v2 is not supported yet)",
    };
  }
  sweepStaleParents(own);
  const parent = `${own}/tsgi-${Deno.pid}`;
  try {
    Deno.mkdirSync(parent);
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) {
      return { missing: `cannot make a cgroup under ${own} (${messageOf(error)})` };
    }
  }
  return { cgroups: new CgroupParent(parent, othersMayStay) };
}

/**
 * The children's cgroups, each used by one child at a time and then by the next: making and
 * removing a memory cgroup per child costs the kernel more than the child's start is worth.
 * Each keeps its limit; the OOM counter is read before and after a child's stay.
 */
export class CgroupParent {
  readonly path: string;
  /**
   * Whether a child may leave processes in its cgroup (it may run programs). If not, the child
   * is alone in it: an OOM kill there kills the child, so the counter needs reading only after
   * a SIGKILL, and the cgroup is empty once the child is reaped.
   */
  readonly #othersMayStay: boolean;
  /** Empty cgroups, ready for a child, each with its OOM kill count so far. */
  readonly #free: Slot[] = [];
  #made = 0;

  constructor(path: string, othersMayStay: boolean) {
    this.path = path;
    this.#othersMayStay = othersMayStay;
  }

  /**
   * Puts process `pid` (and what it will start) in a cgroup limited to `bytes`. Done off the
   * main thread: moving a process between cgroups can wait for an RCU grace period (about
   * 10 ms) when moves are rare.
   */
  async enter(pid: number, bytes: number): Promise<ChildCgroup> {
    const slot = this.#free.pop() ?? await this.#make(bytes);
    try {
      await Deno.writeTextFile(`${slot.dir}/cgroup.procs`, String(pid));
    } catch (error) {
      this.#free.push(slot);
      throw error;
    }
    return {
      end: async (killed) => {
        let outOfMemory = false;
        if (killed || this.#othersMayStay) {
          const kills = await oomKills(slot.dir);
          outOfMemory = kills > slot.kills;
          slot.kills = kills;
        }
        if (!this.#othersMayStay || await emptied(slot.dir)) this.#free.push(slot);
        return outOfMemory;
      },
    };
  }

  async #make(bytes: number): Promise<Slot> {
    const dir = `${this.path}/slot-${this.#made++}`;
    await Deno.mkdir(dir);
    try {
      await Deno.writeTextFile(`${dir}/memory.limit_in_bytes`, String(bytes));
      // Swap must not extend the limit: memory plus swap gets the same bound, where it exists.
      try {
        await Deno.writeTextFile(`${dir}/memory.memsw.limit_in_bytes`, String(bytes));
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      return { dir, kills: 0 };
    } catch (error) {
      removeQuietly(dir);
      throw error;
    }
  }

  /** Removes every cgroup and the parent, once every child's is released. */
  close(): void {
    for (const slot of this.#free.splice(0)) removeQuietly(slot.dir);
    removeQuietly(this.path);
  }
}

/** A reusable cgroup, and the OOM kills the kernel had counted in it when it was last freed. */
interface Slot {
  dir: string;
  kills: number;
}

/** Removes the cgroups of masters that are gone (killed before they could remove them). */
function sweepStaleParents(own: string): void {
  try {
    for (const entry of Deno.readDirSync(own)) {
      const pid = /^tsgi-(\d+)$/.exec(entry.name)?.[1];
      if (!entry.isDirectory || pid === undefined || isAlive(Number(pid))) continue;
      const parent = `${own}/${entry.name}`;
      // Its children died with it (parent-death signal), so its cgroups are empty.
      for (const child of Deno.readDirSync(parent)) {
        if (child.isDirectory) removeQuietly(`${parent}/${child.name}`);
      }
      removeQuietly(parent);
    }
  } catch {
    // Unreadable: nothing to sweep.
  }
}

/** This process's memory cgroup folder under a cgroup v1 mount; null without one. */
function ownMemoryCgroupV1(): string | null {
  const line = Deno.readTextFileSync("/proc/self/cgroup").split("\n")
    .find((l) => l.split(":")[1]?.split(",").includes("memory"));
  if (line === undefined) return null;
  const path = line.split(":").slice(2).join(":");
  for (const mount of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS … - FSTYPE SOURCE SUPEROPTIONS
    const [left, right] = mount.split(" - ");
    if (right === undefined) continue;
    const [fstype, , superOptions = ""] = right.split(" ");
    if (fstype !== "cgroup" || !superOptions.split(",").includes("memory")) continue;
    const [, , , root, mountPoint] = left.split(" ");
    const inside = root === "/" ? path : path.startsWith(root) ? path.slice(root.length) : null;
    if (inside === null) continue;
    return `${mountPoint}${inside === "/" ? "" : inside}`;
  }
  return null;
}

/** The kernel's count of OOM kills in cgroup `dir` (v1's memory.oom_control, Linux 4.13+). */
async function oomKills(dir: string): Promise<number> {
  try {
    const text = await Deno.readTextFile(`${dir}/memory.oom_control`);
    return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? "0");
  } catch {
    return 0;
  }
}

/** Kills what is left in `dir`, waiting a little for the dying to leave; false if it stays. */
async function emptied(dir: string): Promise<boolean> {
  for (let i = 0; i < RELEASE_TRIES; i++) {
    const members = await killMembers(dir);
    if (members === null) return false; // Removed.
    if (members === 0) return true;
    await new Promise((resolve) => setTimeout(resolve, RELEASE_WAIT_MS));
  }
  return false;
}

/** Sends SIGKILL to every process in cgroup `dir`; how many there were, null without it. */
async function killMembers(dir: string): Promise<number | null> {
  let pids: number[];
  try {
    pids = (await Deno.readTextFile(`${dir}/cgroup.procs`)).split("\n").filter((l) => l !== "")
      .map(Number);
  } catch {
    return null;
  }
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
  return pids.length;
}

function removeQuietly(dir: string): boolean {
  try {
    Deno.removeSync(dir);
    return true;
  } catch {
    return false;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
