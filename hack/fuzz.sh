#!/usr/bin/env bash
# Runs every fuzz target of the module (func FuzzX in a _test.go file) for FUZZTIME each (default
# 30s), one after the other, and prints a line per target. `make test` runs only their seed
# corpora (and the failing inputs kept in testdata/fuzz), as go test does.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-30s}"
failed=0
while IFS=: read -r file line; do
	name="$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"$line")"
	pkg="$(dirname "$file")"
	if out="$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1)"; then
		execs="$(grep -oE 'execs: [0-9]+' <<<"$out" | tail -1 || true)"
		printf 'ok    %-28s %-34s %s\n' "$name" "$pkg" "${execs:-}"
	else
		failed=1
		printf 'FAIL  %-28s %s\n%s\n' "$name" "$pkg" "$out"
	fi
done < <(grep -rHE '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' --include='*_test.go' . | sort)
exit "$failed"
