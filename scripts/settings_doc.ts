// Writes docs/settings.md from the settings table (src/settings.ts), so the reference page can
// never drift from the flags: `deno task docs`. tests/settings_doc_test.ts checks it is current.

import { SETTINGS } from "../src/cli/settings.ts";

/** The page's Markdown, generated. */
export function settingsMarkdown(): string {
  const rows = SETTINGS.map((s) => {
    const flag = `${s.short ? `-${s.short}, ` : ""}--${s.flag}${s.metavar ? ` ${s.metavar}` : ""}`;
    const shown = s.boolean ? "off" : s.default === "" ? "none" : `\`${s.default}\``;
    return `| \`${flag.replaceAll("|", "\\|")}\` | \`${s.key}\` | ${shown} | ${s.help} |`;
  });
  return [
    "# Settings",
    "",
    "Generated from `src/settings.ts` by `deno task docs`; do not edit by hand. Every setting is",
    "a command-line flag and, under its key, an entry of a config file (see the README).",
    "",
    "| flag | config key | default | meaning |",
    "| --- | --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}

if (import.meta.main) {
  const path = new URL("../docs/settings.md", import.meta.url);
  await Deno.writeTextFile(path, settingsMarkdown());
  const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", path.pathname] }).output();
  if (!fmt.success) console.error(new TextDecoder().decode(fmt.stderr));
  console.log(`wrote ${path.pathname}`);
}
