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

# The targets run FUZZ_JOBS at a time (default: one per core; each libFuzzer run is one thread),
# each into its own log, printed whole when the target fails and as its last line otherwise.
jobs="${FUZZ_JOBS:-$(nproc)}"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
run_one() {
    local t="$1"
    if cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 >"$logs/$t.log" 2>&1; then
        echo "== fuzz $t ${seconds}s: $(grep -E '^(Done|#[0-9]+.*DONE)' "$logs/$t.log" | tail -1)"
    else
        echo "== fuzz $t CRASHED:"
        cat "$logs/$t.log"
        touch "$logs/$t.failed"
    fi
}

for t in $targets; do
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
    seed_from_fixtures "$t"
done
running=0
for t in $targets; do
    if ((running >= jobs)); then
        wait -n || true
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait

failed=()
for t in $targets; do
    [ -e "$logs/$t.failed" ] && failed+=("$t")
done
if ((${#failed[@]})); then
    echo "smoke.sh: crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "smoke.sh: $(wc -w <<<"$targets") targets ran ${seconds}s each, $jobs at a time, without a crash"
