// Writes docs/settings.md from the settings table (src/cli/settings.ts), so the reference page can
// never drift from the flags: `deno task docs`. tests/settings_doc_test.ts checks it is current.

import { formatDefault, SECTIONS, SETTINGS } from "../src/cli/settings.ts";

/** The page's Markdown, generated. */
export function settingsMarkdown(): string {
  const lines = [
    "# Settings",
    "",
    "Generated from `src/cli/settings.ts` by `deno task docs`; do not edit by hand. Every setting",
    "is a command-line flag and, under its key, an entry of a config file (see the README).",
  ];
  for (const [section, title] of Object.entries(SECTIONS)) {
    lines.push(
      "",
      `## ${title}`,
      "",
      "| flag | config key | default | meaning |",
      "| --- | --- | --- | --- |",
    );
    for (const s of SETTINGS) {
      if (s.section !== section) continue;
      const flag = `${s.short ? `-${s.short}, ` : ""}--${s.flag}${
        s.metavar ? ` ${s.metavar}` : ""
      }`;
      const value = formatDefault(s);
      const shown = s.boolean ? "off" : value === "" ? "none" : `\`${value}\``;
      lines.push(`| \`${flag.replaceAll("|", "\\|")}\` | \`${s.key}\` | ${shown} | ${s.help} |`);
    }
  }
  lines.push("");
  return lines.join("\n");
}

if (import.meta.main) {
  const path = new URL("../docs/settings.md", import.meta.url);
  await Deno.writeTextFile(path, settingsMarkdown());
  const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", path.pathname] }).output();
  if (!fmt.success) console.error(new TextDecoder().decode(fmt.stderr));
  console.log(`wrote ${path.pathname}`);
}
