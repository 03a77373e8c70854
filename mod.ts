// tsgi's public library surface: the TSGI types, serving an app from code, the fetch adapters
// both ways, and the middleware apps are made of (validate, mount, staticFiles).
export type {
  App,
  Body,
  Chunk,
  Environ,
  ErrorStream,
  FetchApp,
  Input,
  StartResponse,
} from "./src/tsgi/types.ts";
export { serve, type ServeOptions, type ServerHandle } from "./src/server/serve.ts";
export {
  type FetchHandler,
  type FetchHandlerOptions,
  type FetchInfo,
  toFetchHandler,
  toTsgiApp,
} from "./src/app/fetch/to_tsgi.ts";
export { type Rule, validate, ValidationError } from "./src/app/validate.ts";
export { mount } from "./src/app/mount.ts";
export { staticFiles, type StaticFilesOptions } from "./src/app/static_files.ts";
export { HttpError } from "./src/http/errors.ts";
export { BodyTimeoutError, ClientGoneError } from "./src/tsgi/input.ts";
export {
  type UpgradeOptions,
  upgradeWebSocket,
  type WebSocketUpgrade,
} from "./src/app/websocket.ts";
export type { ServerWebSocket } from "./src/server/websocket.ts";
export type { Config } from "./src/cli/settings.ts";
