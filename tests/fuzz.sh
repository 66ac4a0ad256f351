#!/usr/bin/env bash
# Runs every go-test fuzz target in the module for FUZZTIME each (default 30s).
# Fails on the first crasher; the crashing input is left in testdata/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-30s}"
tags="${TAGS:-libvirt_dlopen}"
status=0
while IFS= read -r file; do
  dir="./$(dirname "$file")"
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/'); do
    echo "=== fuzz $dir $target ($fuzztime)"
    if ! go test -tags "$tags" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$dir"; then
      echo "FAIL: fuzz target $target in $dir" >&2
      status=1
    fi
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)
exit $status
