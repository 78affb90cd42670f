/**
 * `ucloud completion bash`: a bash completion script made from the
 * command tree, so it knows every command and flag the CLI has. It
 * completes the group, then the command, then that command's flags and
 * the global ones.
 *
 * @module
 */
import { flagName, takesValue } from "./args.ts";

/** A command as the script needs it: its flags with their help lines. */
interface Flagged {
  flags: Record<string, string>;
}

/** "--timeout SECONDS" -> "--timeout"; "-h, --help" -> "-h --help". */
function flagWords(flags: Record<string, string>): string[] {
  return Object.keys(flags).flatMap((f) =>
    f.split(" ").filter((w) => w.startsWith("-")).map((w) =>
      w.replace(/,$/, "")
    )
  );
}

/**
 * The bash script that completes `ucloud` command lines.
 *
 * @example
 * ```ts
 * const script = bashCompletion(COMMANDS, GLOBAL_FLAGS, GROUPS);
 * // source <(ucloud completion bash)
 * ```
 */
export function bashCompletion(
  commands: Record<string, Flagged>,
  globals: Record<string, string>,
  groups: string[],
): string {
  const names = Object.keys(commands);
  const firsts = [...new Set([...names.map((n) => n.split(" ")[0]), "help"])];
  const subs = groups.map((g) =>
    `    ${g}) words="${
      names.filter((n) => n.startsWith(`${g} `)).map((n) =>
        n.slice(g.length + 1)
      )
        .join(" ")
    }" ;;`
  );
  const flags = names.map((n) =>
    `    "${n}") words="${flagWords(commands[n].flags).join(" ")}" ;;`
  );
  const all = [globals, ...Object.values(commands).map((c) => c.flags)];
  const values = [
    ...new Set(
      all.flatMap((f) => Object.keys(f)).filter(takesValue).map((k) =>
        `--${flagName(k)}`
      ),
    ),
  ];
  return `# bash completion for ucloud (made by 'ucloud completion bash').
# Load it with: source <(ucloud completion bash)
_ucloud() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local -a found=()
  local i w words
  case "$prev" in
    ${values.join("|")}) return 0 ;;
  esac
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in
      ${values.join("|")}) ((i++)) ;;
      -*) ;;
      *) found+=("$w") ;;
    esac
  done
  if ((\${#found[@]} == 0)); then
    words="${firsts.join(" ")}"
  elif [[ " ${
    groups.join(" ")
  } " == *" \${found[0]} "* ]] && ((\${#found[@]} == 1)); then
    case "\${found[0]}" in
${subs.join("\n")}
    esac
  else
    local key="\${found[0]}"
    [[ " ${groups.join(" ")} " == *" $key "* ]] && key="$key \${found[1]}"
    case "$key" in
${flags.join("\n")}
    esac
    words="$words ${flagWords(globals).join(" ")}"
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _ucloud ucloud
`;
}
