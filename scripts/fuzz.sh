#!/usr/bin/env bash
# Builds the libFuzzer target in Fuzz/ (with AddressSanitizer) and runs it over swtrace's
# front end for a bounded time. Needs the running kernel's BTF; no root, nothing is loaded.
#
# Usage: scripts/fuzz.sh [SECONDS]   (default: $FUZZ_SECONDS, else 300)
#
# Mutations use the language's tokens and field names from Fuzz/swtrace.dict.
# Seeds: specs/*.spec, every ```swtrace block of grammar/README.md, the input line of every
# golden diagnostic test, and Fuzz/Regressions (past findings). The growing corpus is kept
# in .build-fuzz/corpus between runs. A crash leaves its input in .build-fuzz/findings/ and
# makes this script fail; copy it to Fuzz/Regressions/ (FuzzRegressionTests replays every file
# there in `make test`) and fix it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v swift >/dev/null 2>&1; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi

seconds="${1:-${FUZZ_SECONDS:-300}}"
scratch="${FUZZ_SCRATCH:-.build-fuzz}"
seeds="$scratch/seeds"
corpus="$scratch/corpus"
findings="$scratch/findings"

echo "fuzz: building Fuzz/ with -sanitize=fuzzer,address in $scratch"
started=$SECONDS
# SwiftPM passes --sanitize=fuzzer --sanitize=address to swiftc as two flags, and the last
# one wins: the modules would get ASan but no coverage for libFuzzer to follow. The single
# -sanitize=fuzzer,address after them restores both (the --sanitize flags still make SwiftPM
# link libFuzzer and the ASan runtime). Dead stripping would drop the coverage counters.
build=(swift build --package-path Fuzz --scratch-path "$scratch" -c release --disable-dead-strip
  --sanitize=fuzzer --sanitize=address -Xswiftc "-sanitize=fuzzer,address")
"${build[@]}" --product swtrace-fuzz
echo "fuzz: built in $((SECONDS - started)) s"
fuzzer="$("${build[@]}" --show-bin-path)/swtrace-fuzz"

# Seeds are rebuilt every run so that they follow the specs and the reference.
rm -rf "$seeds"
mkdir -p "$seeds" "$corpus" "$findings"
for spec in specs/*.spec; do
  cp "$spec" "$seeds/spec-$(basename "$spec")"
done
awk -v dir="$seeds" '
  /^```swtrace[[:space:]]*$/ { inside = 1; n++; file = sprintf("%s/reference-%03d.spec", dir, n); printf "" > file; next }
  inside && /^```[[:space:]]*$/ { inside = 0; close(file); next }
  inside { print > file }
' grammar/README.md
for golden in Tests/SyntaxTests/Golden/*.txt Tests/SemaTests/Golden/*.txt; do
  # The first line of a golden file is `// SPEC`, the input its diagnostics belong to.
  head -n 1 "$golden" | sed 's|^// ||' >"$seeds/golden-$(basename "$golden" .txt).spec"
done
echo "fuzz: $(find "$seeds" -type f | wc -l) seeds, $(find "$corpus" -type f | wc -l) inputs in the corpus"

# -timeout: one input compiling for 30 s is a hang worth reporting (skb:* with every backend
# compiles about 1,600 programs in well under that). -rss_limit_mb: ASan's shadow memory
# counts; the front end itself needs a few hundred MB with the kernel's BTF.
status=0
"$fuzzer" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -max_len=8192 -dict=Fuzz/swtrace.dict \
  -print_final_stats=1 -artifact_prefix="$findings/" \
  "$corpus" "$seeds" Fuzz/Regressions || status=$?
if [ "$status" -ne 0 ]; then
  echo "fuzz: the fuzzer found a problem (status $status); its input is in $findings/:" >&2
  ls -l "$findings" >&2
  echo "fuzz: copy it to Fuzz/Regressions/, make it pass, and commit both" >&2
fi
exit "$status"
