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
} from "./src/types.ts";
export { serve, type ServeOptions, type ServerHandle } from "./src/serve.ts";
export {
  type FetchHandler,
  type FetchHandlerOptions,
  type FetchInfo,
  toFetchHandler,
  toTsgiApp,
} from "./src/fetch_adapter.ts";
export { type Rule, validate, ValidationError } from "./src/validate.ts";
export { mount } from "./src/mount.ts";
export { staticFiles, type StaticFilesOptions } from "./src/static_files.ts";
export { HttpError } from "./src/errors.ts";
export type { Config } from "./src/settings.ts";
