// tsgi's public library surface: the TSGI types, serving an app from code, and the adapters.
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
export { toTsgiApp } from "./src/fetch_adapter.ts";
export { HttpError } from "./src/errors.ts";
export type { Config } from "./src/settings.ts";
