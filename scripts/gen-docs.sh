#!/usr/bin/env bash
# Regenerates the manual page and the shell completions from the command-line definition:
#
#   docs/swtrace.1               generate-manual's page, with the SYNOPSIS rewritten, the
#                                examples of `swtrace --help` as EXAMPLES, and the sections of
#                                docs/swtrace.1.sections (THE LANGUAGE, ENVIRONMENT, FILES,
#                                EXIT STATUS) in place of its generic EXIT STATUS
#   docs/completions/swtrace.*   `swtrace --generate-completion-script bash|zsh|fish`
#
# Run it after changing an option, a help text or docs/swtrace.1.sections; the doc-test
# (Tests/EndToEndTests/DocumentationTests.swift) fails while they are out of date.
# SWTRACE_MAN_DATE=yyyy-mm-dd sets the page's date (default: today).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v swift >/dev/null 2>&1; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi

swift build --product swtrace >&2
bin=$(swift build --show-bin-path)
work=$(mktemp -d /tmp/swtrace-gen-docs.XXXXXX)
trap 'rm -rf "$work"' EXIT

swift package --allow-writing-to-package-directory generate-manual --configuration debug \
  --date "${SWTRACE_MAN_DATE:-$(date +%Y-%m-%d)}" --output-directory "$work" >&2
"$bin/swtrace" --help >"$work/help.txt"

python3 - "$work/swtrace.1" "$work/help.txt" docs/swtrace.1.sections docs/swtrace.1 <<'EOF'
import re
import sys

page_path, help_path, sections_path, out_path = sys.argv[1:]
page = open(page_path).read().split("\n")
help_lines = open(help_path).read().split("\n")
sections = [l for l in open(sections_path).read().rstrip("\n").split("\n")]


def escape(line):
    """A line of text for mdoc: backslashes escaped, no line starting with a dot or quote."""
    line = line.replace("\\", "\\e")
    return "\\&" + line if line.startswith((".", "'")) else line


# The examples of `swtrace --help`: from the "Examples" line to the first empty line.
start = next(i for i, l in enumerate(help_lines) if l.startswith("Examples"))
end = help_lines.index("", start)
examples = help_lines[start + 1:end]

# trace's discussion (the examples and the paragraph after them) is the help screen's, not
# the manual's: the manual has EXAMPLES and EXIT STATUS of its own.
first = next(i for i, l in enumerate(page) if l.startswith("Examples"))
last = next(i for i in range(first, len(page)) if page[i].startswith(".Bl"))
if page[first - 1] == ".Pp":
    first -= 1
del page[first:last]

synopsis = [
    ".Sh SYNOPSIS",
    ".Nm", ".Op Ar options", ".Fl e Ar SPEC",
    ".Nm", ".Op Ar options", ".Ar FILE.spec",
    ".Nm", ".Fl l", ".Op Ar PATTERN | FILE.spec | Fl e Ar SPEC",
    ".Nm", "check", ".Op Fl -btf Ar FILE", ".Op Fl e Ar SPEC", ".Op Ar FILE.spec ...",
    ".Nm", "fmt", ".Op Fl i", ".Op Fl e Ar SPEC | FILE.spec",
]
s = page.index(".Sh SYNOPSIS")
e = page.index(".Sh DESCRIPTION")
page[s:e] = synopsis

exit_status = page.index('.Sh "EXIT STATUS"')
assert page[exit_status + 1] == ".Ex -std", page[exit_status:exit_status + 2]
# Descriptions (indented by 2) become paragraphs, commands (by 4, continued by 6) displays.
intro = re.fullmatch(r"Examples \((.*)\):", help_lines[start].strip())
example_section = [".Sh EXAMPLES"] + ([escape(intro.group(1)[0].upper() + intro.group(1)[1:] + ".")] if intro else [])
in_display = False
for line in examples:
    if line.startswith("    "):
        if not in_display:
            example_section.append(".Bd -literal -offset indent")
            in_display = True
        example_section.append(escape(line[4:]))
    else:
        if in_display:
            example_section.append(".Ed")
            in_display = False
        example_section += [".Pp", escape(line.strip())]
if in_display:
    example_section.append(".Ed")
see_also = [
    ".Sh SEE ALSO",
    ".Xr bpftrace 8 ,",
    ".Xr bpftool 8 ,",
    ".Xr ip-netns 8 ;",
    ".Pa README.md",
    "and",
    ".Pa grammar/README.md",
    "in the source.",
]
body = [l for l in sections if not l.startswith('.\\"')]
page[exit_status:exit_status + 2] = body + example_section + see_also
open(out_path, "w").write("\n".join(page).rstrip("\n") + "\n")
EOF

for shell in bash zsh fish; do
  "$bin/swtrace" --generate-completion-script "$shell" >"docs/completions/swtrace.$shell"
done
echo "gen-docs: wrote docs/swtrace.1 and docs/completions/swtrace.{bash,zsh,fish}" >&2
