#!/usr/bin/env bash
# Fuzz smoke test: builds every target once, then runs each for ${FUZZ_SECONDS:-20}
# seconds on its working corpus (fuzz/corpus/T, git-ignored) plus the committed seeds
# (fuzz/seeds/T: hostile inputs made by hand) and the fixture files fuzz/fixture-seeds maps to T
# (copied into the corpus first: the fixture tree is the one source of real files). Exits non-zero if any target crashes; the crashing input is left in
# fuzz/artifacts/T/. Needs a nightly toolchain and `cargo install cargo-fuzz`.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-20}"

if ! command -v cargo-fuzz >/dev/null; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "smoke.sh: the fuzz targets need a nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi

cargo +nightly fuzz build
targets=$(cargo +nightly fuzz list)

# Copies the fixture files fuzz/fixture-seeds maps to target $1 into its corpus.
seed_from_fixtures() {
    local target pattern f
    shopt -s globstar nullglob
    while read -r target pattern; do
        [ "$target" = "$1" ] || continue
        for f in $pattern; do
            [ -f "$f" ] || continue
            local name="${f#tests/fixtures/}"
            cp "$f" "fuzz/corpus/$1/fixture-${name//[\/:]/-}"
        done
    done < <(grep -v '^#' fuzz/fixture-seeds)
    shopt -u globstar nullglob
}

failed=()
for t in $targets; do
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
    seed_from_fixtures "$t"
    echo "== fuzz $t for ${seconds}s"
    if ! cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10; then
        failed+=("$t")
    fi
done

if ((${#failed[@]})); then
    echo "smoke.sh: crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "smoke.sh: $(wc -w <<<"$targets") targets ran ${seconds}s each without a crash"
