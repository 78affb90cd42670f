/**
 * The help texts: of the whole CLI, of a command group, and of one
 * command (summary, usage, flags, global flags, examples), all from the
 * command tree (commands.ts).
 *
 * @module
 */
import {
  type CommandName,
  COMMANDS,
  GLOBAL_FLAGS,
  SINGLES,
} from "./commands.ts";
import { formatTable } from "./output.ts";

/**
 * The help of `topic`: [] for all, ["vm"] for a group, ["vm", "create"]
 * or ["login"] for one command.
 *
 * @example
 * ```ts
 * helpText(["vm", "create"]).startsWith("Create a VM"); // true
 * ```
 */
export function helpText(topic: string[]): string {
  const lines: string[] = [];
  const globals = formatFlags(GLOBAL_FLAGS);
  if (topic.length === 2 || SINGLES.includes(topic[0])) {
    const spec = COMMANDS[topic.join(" ") as CommandName];
    lines.push(`${spec.summary}.`, "", `Usage: ${spec.usage}`, "");
    if (Object.keys(spec.flags).length > 0) {
      lines.push("Flags:", ...formatFlags(spec.flags), "");
    }
    lines.push("Global flags:", ...globals, "", "Examples:");
    lines.push(...spec.examples.map((e) => `  ${e}`));
    return lines.join("\n") + "\n";
  }
  const group = topic[0];
  const names = (Object.keys(COMMANDS) as CommandName[])
    .filter((c) =>
      group === undefined ? !SINGLES.includes(c) : c.startsWith(`${group} `)
    );
  if (group === undefined) {
    lines.push(
      "ucloud: manage the VMs, networks, images, hosts and tasks of a ucloud cloud.",
      "",
    );
  }
  lines.push(`Usage: ucloud ${group ?? "<group>"} <command> [flags]`, "");
  lines.push("Commands:");
  // The group commands, then the single ones, in one table (one column).
  const listed = group === undefined
    ? [...names, ...(SINGLES as CommandName[])]
    : names;
  lines.push(
    ...formatTable(listed, [
      { header: "", value: (c) => `  ${c}` },
      { header: "", value: (c) => COMMANDS[c].summary },
    ]).split("\n").slice(1),
  );
  lines.push("", "Global flags:", ...globals, "");
  lines.push(
    `Run 'ucloud ${group ? `${group} ` : ""}<command> --help' for its flags.`,
  );
  return lines.join("\n") + "\n";
}

function formatFlags(flags: Record<string, string>): string[] {
  return formatTable(Object.entries(flags), [
    { header: "", value: ([flag]) => `  ${flag}` },
    { header: "", value: ([, text]) => text },
  ]).split("\n").slice(1);
}
