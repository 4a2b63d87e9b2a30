#!/usr/bin/env bash
# replay-vs-grep.sh: replay's wall and CPU time against `grep -c SRC=` on
# the same file, as paired runs one right after the other (their order
# alternating), so that both see the same load on a shared machine. It
# prints each pair and the medians: wall and CPU (user + system) of each,
# replay's ratios to grep's, its lines/s, and its peak RSS (one more run).
#
#	scripts/replay-vs-grep.sh [-n PAIRS] [-b BIN] [FILE [REPLAY-ARGS...]]
#
# FILE defaults to the benchmarks' generated 1M-line log, written to
# $TMPDIR/sentry-replay-1m.log (by `go test -tags measure`) if it is not
# there; REPLAY-ARGS default to `--json --year 2026`. BIN defaults to
# bin/sentry-nflog, built by `make build` when missing.
set -euo pipefail

pairs=9
bin=bin/sentry-nflog
while getopts n:b: opt; do
	case $opt in
	n) pairs=$OPTARG ;;
	b) bin=$(realpath -m "$OPTARG") ;;
	*) sed -n '2,13s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

file=$(realpath -m "${1:-${TMPDIR:-/tmp}/sentry-replay-1m.log}")
shift || true
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--json --year 2026)
cd "$(dirname "$0")/.."

if [ ! -x "$bin" ]; then
	make --no-print-directory build >&2
fi
if [ ! -e "$file" ]; then
	echo "generating $file" >&2
	SENTRY_GEN=$file go test -count=1 -tags measure -run GenerateReplayInput ./cmd/sentry-nflog >&2
fi

lines=$(wc -l <"$file")
cat "$file" >/dev/null # into the page cache, for both

# timed CMD...: "wall cpu" in seconds, from bash's own clock and the
# child's rusage (millisecond resolution). Output goes to a file, not
# /dev/null: GNU grep stops at the first match when it sees /dev/null.
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timed() {
	local TIMEFORMAT='%3R %3U %3S' t
	t=$({ time "$@" >"$out" 2>&1; } 2>&1) || true # grep -c finding nothing fails
	set -- $t
	awk -v r="$1" -v u="$2" -v s="$3" 'BEGIN {printf "%.3f %.3f\n", r, u + s}'
}

median() { sort -g | awk '{v[NR] = $1} END {m = int((NR + 1) / 2); if (NR % 2) print v[m]; else printf "%.3f\n", (v[m] + v[m+1]) / 2}'; }

# Once first: replay must succeed (and the binary is in the page cache).
if ! "$bin" replay "${args[@]}" "$file" >"$out" 2>&1; then
	cat "$out" >&2
	exit 1
fi

rows=()
echo "$(nproc) cores, load: $(uptime | sed 's/.*load average: //')"
printf '%-5s %9s %9s %9s %9s %8s %8s\n' pair grep-wall grep-cpu wall cpu x-wall x-cpu
for i in $(seq 1 "$pairs"); do
	if [ $((i % 2)) = 1 ]; then
		g=$(timed grep -c SRC= "$file")
		r=$(timed "$bin" replay "${args[@]}" "$file")
	else
		r=$(timed "$bin" replay "${args[@]}" "$file")
		g=$(timed grep -c SRC= "$file")
	fi
	read -r gw gc <<<"$g"
	read -r rw rc <<<"$r"
	xw=$(awk -v a="$rw" -v b="$gw" 'BEGIN {printf "%.2f", a / b}')
	xc=$(awk -v a="$rc" -v b="$gc" 'BEGIN {printf "%.2f", a / b}')
	rows+=("$gw $gc $rw $rc $xw $xc")
	printf '%-5s %9s %9s %9s %9s %8s %8s\n' "$i" "$gw" "$gc" "$rw" "$rc" "$xw" "$xc"
done
col() { printf '%s\n' "${rows[@]}" | awk -v c="$1" '{print $c}' | median; }
gw=$(col 1) gc=$(col 2) rw=$(col 3) rc=$(col 4) xw=$(col 5) xc=$(col 6)
printf '%-5s %9s %9s %9s %9s %8s %8s\n' median "$gw" "$gc" "$rw" "$rc" "$xw" "$xc"
rss=0
if [ -x /usr/bin/time ]; then
	rssf=$(mktemp)
	/usr/bin/time -f %M -o "$rssf" "$bin" replay "${args[@]}" "$file" >"$out" 2>&1
	rss=$(tail -1 "$rssf")
	rm -f "$rssf"
fi
echo "load: $(uptime | sed 's/.*load average: //')"
printf 'replay %s: %d lines, median wall %ss (%sx grep), CPU %ss (%sx grep), %.2fM lines/s, peak RSS %d MB\n' \
	"$(basename "$file")" "$lines" "$rw" "$xw" "$rc" "$xc" "$(awk -v n="$lines" -v w="$rw" 'BEGIN {print n / w / 1e6}')" $((rss / 1024))
