#!/usr/bin/env bash
# Runs every Go fuzz target of the repository (each `func Fuzz...` in a
# *_fuzz_test.go file), one after another, each for FUZZTIME (default 5s; Go
# runs one target per `go test -fuzz` call). `make test` runs it briefly,
# `make fuzz` for longer (ADR 0048). FUZZ_WORKERS (default 1) is -parallel, the
# number of fuzzing processes per target. An input that fails is written to the
# target's testdata/fuzz/<FuzzName>/ by Go: commit it as a regression seed once
# the bug is fixed. Stops at the first target that fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

FUZZTIME=${FUZZTIME:-5s}
FUZZ_WORKERS=${FUZZ_WORKERS:-1}
# How long Go may shrink a new input (a failing one included); its default, 60s,
# can stall a short run.
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-10s}

# "<package dir> <FuzzName>" per target, sorted.
targets=$(grep -rHo --include='*_fuzz_test.go' '^func Fuzz[A-Za-z0-9_]*' . |
  sed -E 's|^\./(.*)/[^/]+:func (Fuzz.*)$|\1 \2|' | sort)
[ -n "$targets" ] || { echo "fuzz: no fuzz targets found" >&2; exit 1; }

start=$SECONDS
n=0
while read -r dir name; do
  n=$((n + 1))
  printf 'fuzz: %s in ./%s for %s\n' "$name" "$dir" "$FUZZTIME"
  # Of Go's progress lines only the last (total execs) is kept.
  set +e
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" -parallel "$FUZZ_WORKERS" "./$dir" 2>&1 |
    awk '/^fuzz: elapsed/ { last = $0; next } { print } END { if (last != "") print last }'
  status=${PIPESTATUS[0]}
  set -e
  [ "$status" -eq 0 ] || { echo "fuzz: $name failed (the input is in ./$dir/testdata/fuzz/$name/)" >&2; exit 1; }
done <<<"$targets"
printf 'fuzz: %d targets, %d s in all (compiles included)\n' "$n" $((SECONDS - start))
