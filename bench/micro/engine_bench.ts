// The whole engine per request — scan, parse, environ, app, response head, write — over a
// fake socket, so the figure is the engine's own cost without the kernel's.
import { Connection } from "../../src/server/connection.ts";
import {
  CONNECTION_INFO,
  engineFor,
  fakeConn,
  HEAVY_REQUEST,
  helloApp,
  pipelined,
  SMALL_REQUEST,
} from "./fixtures.ts";

const engine = engineFor(helloApp);
const small16 = pipelined(SMALL_REQUEST, 16);
const heavy16 = pipelined(HEAVY_REQUEST, 16);

Deno.bench(
  "engine: 16 pipelined small requests, hello app",
  { group: "engine", baseline: true },
  async () => {
    await new Connection(fakeConn(small16, 1), engine, CONNECTION_INFO).run();
  },
);

Deno.bench(
  "engine: 16 pipelined header-heavy requests, hello app",
  { group: "engine" },
  async () => {
    await new Connection(fakeConn(heavy16, 1), engine, CONNECTION_INFO).run();
  },
);

Deno.bench("engine: 1 small request per read, hello app", { group: "engine" }, async () => {
  await new Connection(fakeConn(SMALL_REQUEST, 1), engine, CONNECTION_INFO).run();
});
