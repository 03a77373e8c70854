// What the pool adds to serving: how many workers, when they retire, when a silent one dies.

import type { LoadOptions } from "../app/loader.ts";
import type { ServerConfig } from "../server/config.ts";

export interface PoolSettings {
  /** Worker processes under a supervising master; 0 serves in the process itself. */
  workers: number;
  /** Requests after which a worker retires (0: never), plus up to the jitter at random. */
  maxRequests: number;
  maxRequestsJitter: number;
  /** Seconds a worker may go without a heartbeat before it is killed (0: never). */
  timeout: number;
  /** Workers bind with SO_REUSEPORT instead of sharing the master's sockets. */
  reusePort: boolean;
  /**
   * The app's Deno permission flags (`--allow-net=…`, after APP): workers start with them and
   * their set-up's, and give the set-up's back before they import the app. Empty or ["none"]:
   * workers keep the master's permissions.
   */
  permissions: string[];
}

/** What a master and its workers run with: serving, loading the app, and the pool's own. */
export interface PoolConfig extends ServerConfig, PoolSettings, LoadOptions {}
