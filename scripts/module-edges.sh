#!/usr/bin/env bash
# Checks that Package.swift declares exactly the imports each target's sources make, and
# the module rules of docs/architecture.md: no libbpf in the compiler core or Output, no
# re-export of libbpf from BTF, and a BPF module that knows nothing of the language.
#
# Usage: scripts/module-edges.sh   (exit 1 with the differences when they disagree)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v swift >/dev/null 2>&1; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi

swift package dump-package | python3 -c '
import json, os, re, sys

package = json.load(sys.stdin)
internal = {t["name"] for t in package["targets"]}
# Modules of the toolchain and the C library, which no target declares.
system = {"Foundation", "FoundationEssentials", "Glibc", "Dispatch", "Synchronization", "Testing", "XCTest"}
# Modules an external product brings with it.
product_modules = {"FlyingFox": {"FlyingFox", "FlyingSocks"}}
problems = []

def import_lines(directory):
    for root, _, files in os.walk(directory):
        for name in files:
            if name.endswith(".swift"):
                path = os.path.join(root, name)
                for number, line in enumerate(open(path, encoding="utf-8"), 1):
                    match = re.match(r"\s*(@testable\s+)?(?:(public|internal|private|package|fileprivate)\s+)?import\s+([A-Z]\w*)\s*$", line)
                    if match:
                        yield path, number, match.group(2), match.group(3)

for target in package["targets"]:
    if target["type"] == "system":
        continue
    name = target["name"]
    directory = target.get("path") or os.path.join("Tests" if target["type"] == "test" else "Sources", name)
    declared, products = set(), set()
    for dependency in target["dependencies"]:
        kind, value = next(iter(dependency.items()))
        if kind in ("byName", "target"):
            declared.add(value[0])
        elif kind == "product":
            products |= product_modules.get(value[0], {value[0]})
    imports = {}
    for path, number, access, module in import_lines(directory):
        imports.setdefault(module, []).append((path, number, access))
    used_internal = {m for m in imports if m in internal}
    for module in sorted(used_internal - declared):
        problems.append(f"{name} imports {module} ({imports[module][0][0]}) without declaring it")
    for module in sorted(declared - used_internal):
        problems.append(f"{name} declares {module} but imports it nowhere")
    for module in sorted(set(imports) - internal - system - products):
        problems.append(f"{name} imports {module}, which is neither a target, a declared product nor a system module")
    # The module rules.
    if name in ("SwtraceSyntax", "BPF", "Sema", "CodeGen", "Output") and {"LibBPF", "CLibBPF"} & set(imports):
        problems.append(f"{name} imports libbpf; only BTF (internally) and Runtime may")
    if name == "BPF" and set(imports) & internal:
        problems.append(f"BPF imports {sorted(set(imports) & internal)}; it is a leaf")
    for module, uses in imports.items():
        for path, number, access in uses:
            if module in ("LibBPF", "CLibBPF") and access != "internal" and not target["type"] == "test":
                problems.append(f"{path}:{number}: {module} must be imported with internal import")

if problems:
    print("module edges: Package.swift and the sources disagree:", file=sys.stderr)
    for problem in problems:
        print("  " + problem, file=sys.stderr)
    sys.exit(1)
count = len(package["targets"])
print(f"module edges: {count} targets, every import declared and every declaration imported")
'
