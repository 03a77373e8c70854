// Test support: python's `websockets` (an independent permessage-deflate implementation) as a
// client, through tests/fixtures/ws_deflate_client.py; and whether it is installed here.

import assert from "node:assert/strict";

const CLIENT = new URL("../fixtures/ws_deflate_client.py", import.meta.url).pathname;

/** Whether python3 with `websockets` is here (.ci/run pip-installs it); says so when not. */
export const HAS_PYTHON_WEBSOCKETS = (() => {
  try {
    const args = ["-c", "import websockets"];
    return new Deno.Command("python3", { args, stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
})() ||
  (console.log("skipped: python3's websockets is not installed (pip install websockets)"), false);

/** What the client offers and sends: each reply must equal its message, but for a literal's. */
export interface ClientPlan {
  offer?: Record<string, boolean | number | null>;
  messages: ({ kind: "text" | "binary"; size: number; fragments?: number; pattern?: "random" } | {
    kind: "text";
    literal: string;
  })[];
}

export interface ClientResult {
  /** The 101's Sec-WebSocket-Extensions, or null. */
  extensions: string | null;
  matched: boolean[];
  /** Per message received, whether it came compressed (RSV1). */
  compressed: boolean[];
  /** The replies to literal messages. */
  literals: string[];
  closed?: number | null;
}

export async function deflateClient(port: number, plan: ClientPlan): Promise<ClientResult> {
  const output = await new Deno.Command("python3", {
    args: [CLIENT, `ws://127.0.0.1:${port}/`, JSON.stringify(plan)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.ok(output.success, `the python client failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(output.stdout));
}
