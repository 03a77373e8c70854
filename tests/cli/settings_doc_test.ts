// docs/settings.md is generated from the settings table; this fails when it is stale.

import assert from "node:assert/strict";
import { settingsMarkdown } from "../../scripts/settings_doc.ts";

/** The table's rows as trimmed cells, whatever widths `deno fmt` padded them to. */
function tableRows(markdown: string): string[][] {
  return markdown.split("\n")
    .filter((line) => line.startsWith("|") && !/^\|\s*-/.test(line))
    .map((line) => line.split(/(?<!\\)\|/).slice(1, -1).map((cell) => cell.trim()));
}

Deno.test("docs/settings.md lists every setting as the table declares it (run deno task docs)", async () => {
  const page = await Deno.readTextFile(new URL("../../docs/settings.md", import.meta.url));
  assert.deepEqual(tableRows(page), tableRows(settingsMarkdown()));
});
