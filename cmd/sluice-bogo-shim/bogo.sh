#!/bin/sh
# bogo.sh BORINGSSL [ENGINE...] [-- RUNNER-FLAGS...]
# Runs BoringSSL's TLS test runner (BoGo) against sluice-bogo-shim, once
# per tlsio engine (default: native stdlib), and prints each engine's
# pass / unimplemented / skipped / failure counts. BORINGSSL is a BoringSSL
# checkout (a work tree, or a git dir such as a bare mirror). Nothing from
# it is copied into this repository: the runner is extracted to a
# temporary directory, and built there with the Go module proxy.
# Extra runner flags follow "--", e.g. -- -test 'Basic-Server-*'.
set -eu
[ $# -ge 1 ] || { echo "usage: bogo.sh BORINGSSL [native|stdlib...] [-- runner flags]" >&2; exit 2; }
src=$1; shift
engines=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do engines="$engines $1"; shift; done
[ $# -gt 0 ] && shift
[ -n "$engines" ] || engines="native stdlib"
here=$(cd "$(dirname "$0")" && pwd)
work=${BOGO_WORK:-$(mktemp -d /tmp/sluice-bogo.XXXXXX)}
mkdir -p "$work/src"

if [ -d "$src/ssl/test/runner" ]; then
	rev=$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)
	mkdir -p "$work/src/ssl/test" "$work/src/util"
	cp -R "$src/ssl/test/runner" "$work/src/ssl/test/"
	cp -R "$src/util/testresult" "$work/src/util/"
	cp "$src/go.mod" "$src/go.sum" "$work/src/"
else
	# A git dir: extract blob by blob (a partial mirror may lack a few
	# large test-vector files the runner does not need).
	rev=$(git --git-dir="$src" rev-parse HEAD)
	git --git-dir="$src" ls-tree -r HEAD -- ssl/test/runner util/testresult go.mod go.sum |
	while read -r _ type obj path; do
		[ "$type" = blob ] || continue
		mkdir -p "$work/src/$(dirname "$path")"
		git --git-dir="$src" cat-file blob "$obj" >"$work/src/$path" 2>/dev/null ||
			{ rm -f "$work/src/$path"; echo "bogo.sh: $path missing in $src, skipped" >&2; }
	done
fi
[ -d "$work/src/ssl/test/runner" ] || { echo "bogo.sh: no ssl/test/runner in $src" >&2; exit 2; }
[ -f "$work/src/ssl/test/runner/runner.go" ] || { echo "bogo.sh: $work/src/ssl/test/runner is no runner" >&2; exit 2; }
echo "BoringSSL $rev, work dir $work"

(cd "$work/src/ssl/test/runner" && GOTOOLCHAIN=auto GOFLAGS=-mod=mod go test -c -o "$work/runner.test" .)
(cd "$here/../.." && go build -o "$work/shim" ./cmd/sluice-bogo-shim)

status=0
for e in $engines; do
	printf '#!/bin/sh\nexec "%s" -tls-engine %s "$@"\n' "$work/shim" "$e" >"$work/shim-$e"
	chmod +x "$work/shim-$e"
	# -loose-errors: tlsio's errors carry no BoringSSL error names; the
	# alert each failure sends is still checked (expectedLocalError).
	# The common config plus the engine's own deviations.
	jq -s '{DisabledTests: (.[0].DisabledTests + .[1].DisabledTests)}' "$here/config.json" "$here/config-$e.json" >"$work/config-$e.json"
	rm -f "$work/unimplemented-$e.txt"
	(cd "$work/src/ssl/test/runner" && SLUICE_BOGO_UNIMPLEMENTED="$work/unimplemented-$e.txt" "$work/runner.test" \
		-shim-path "$work/shim-$e" -shim-config "$work/config-$e.json" \
		-allow-unimplemented -loose-errors -num-workers "${BOGO_WORKERS:-2}" \
		-json-output "$work/results-$e.json" "$@" >"$work/runner-$e.log" 2>&1) || status=1
	echo "engine $e: $(jq -r '[.tests[]] | "pass \(map(select(.actual=="PASS"))|length), unexpected failures \(map(select(.actual=="FAIL" and .is_unexpected))|length), skipped or unimplemented \(map(select(.actual=="SKIP"))|length)"' "$work/results-$e.json")"
	jq -r '.tests | to_entries[] | select(.value.actual=="FAIL" and .value.is_unexpected) | "  FAIL \(.key)"' "$work/results-$e.json" >"$work/failures-$e.txt"
	echo "  failures listed in $work/failures-$e.txt, runner log $work/runner-$e.log"
	if [ -f "$work/unimplemented-$e.txt" ]; then echo "  most common unimplemented:"; sort "$work/unimplemented-$e.txt" | uniq -c | sort -rn | head -${BOGO_TOP:-10}; fi
done
exit $status
