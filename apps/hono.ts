// A Hono app served by tsgi as a fetch app, unchanged: `deno run -A main.ts apps/hono.ts`.
// Routing with params, JSON in and out, cookies, and a streamed response.
import { Hono } from "npm:hono@4";
import { getCookie, setCookie } from "npm:hono@4/cookie";
import { streamText } from "npm:hono@4/streaming";

const app = new Hono();

app.get("/", (c) => c.text("Hello from Hono on tsgi!\n"));

app.get("/users/:id", (c) => c.json({ id: c.req.param("id"), name: `user ${c.req.param("id")}` }));

// JSON in, JSON out: the body is streamed to Hono from the socket.
app.post("/echo", async (c) => {
  const data = await c.req.json();
  return c.json({ received: data, method: c.req.method }, 201);
});

// Two Set-Cookie fields; each reaches the client on its own line.
app.get("/login", (c) => {
  setCookie(c, "session", "abc123", { httpOnly: true, path: "/" });
  setCookie(c, "theme", "dark", { path: "/" });
  return c.text("logged in\n");
});

app.get("/whoami", (c) => c.json({ session: getCookie(c, "session") ?? null }));

// A body of unknown length, sent chunk by chunk as it is written: ?n=5 lines.
app.get("/stream", (c) => {
  const n = Number(c.req.query("n") ?? "5");
  return streamText(c, async (stream) => {
    for (let i = 1; i <= n; i++) {
      await stream.writeln(`line ${i}`);
      await stream.sleep(10);
    }
  });
});

export default app;
