#!/usr/bin/env bash
# make demo: a real scan caught and banned, on this kernel, without touching
# the host's own firewall. Two network namespaces joined by veth (IPv4 and
# IPv6); the victim runs the printed logging rules, a service on port 8080
# and `sentry-nflog run` with the repository's sentry.yaml; the attacker
# scans it. Without root it replays testdata/logs/kern.log in dry-run.
set -euo pipefail
BIN=${1:-bin/sentry-nflog}
LAB=${2:-bin/sentry-lab}
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

replay_demo() {
	say "replay demo: what sentry-nflog would have banned in testdata/logs/kern.log"
	"$BIN" replay --year 2026 testdata/logs/kern.log
}

if [ "$(id -u)" != 0 ]; then
	echo "make demo: not root, so no network namespaces: falling back to the replay demo."
	replay_demo
	exit 0
fi
for tool in ip nft; do
	if ! command -v $tool >/dev/null; then
		echo "make demo: $tool(8) is missing (make deps installs nft): falling back to the replay demo."
		replay_demo
		exit 0
	fi
done

id=$$
V=sentry-demo-v$id
A=sentry-demo-a$id
TMP=$(mktemp -d)
DAEMON=
LISTENER=
cleanup() {
	set +e # clean up everything, whatever fails
	if [ -n "$DAEMON" ]; then kill "$DAEMON" 2>/dev/null; wait "$DAEMON" 2>/dev/null; fi
	if [ -n "$LISTENER" ]; then kill "$LISTENER" 2>/dev/null; fi
	for ns in "$V" "$A"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

say "two namespaces: victim $V (198.51.100.1, 2001:db8:51::1) and attacker $A"
ip netns add "$V"
ip netns add "$A"
ip -n "$V" link add dv$id type veth peer name da$id netns "$A"
ip -n "$V" addr add 198.51.100.1/24 dev dv$id
ip -n "$V" addr add 2001:db8:51::1/64 dev dv$id nodad
ip -n "$A" addr add 198.51.100.2/24 dev da$id
ip -n "$A" addr add 2001:db8:51::2/64 dev da$id nodad
# The IPv6 scanner rotates through addresses of its own /64.
for i in 10 11 12 13 14 15 99; do ip -n "$A" addr add 2001:db8:bad:1::$i/128 dev da$id nodad; done
for ns in "$V" "$A"; do ip -n "$ns" link set lo up; done
ip -n "$V" link set dv$id up
ip -n "$A" link set da$id up
ip -n "$V" route add 2001:db8:bad:1::/64 dev dv$id

say "victim firewall: accept established and port 8080, then the rules of 'sentry-nflog firewall'"
{
	echo 'table inet demo_host {'
	echo '  chain input {'
	echo '    type filter hook input priority filter; policy accept;'
	echo '    ct state established,related accept'
	echo '    iif lo accept'
	echo '    tcp dport 8080 accept'
	"$BIN" firewall --rules-only | sed 's/^/    /'
	echo '  }'
	echo '}'
} >"$TMP/victim.nft"
cat "$TMP/victim.nft"
ip netns exec "$V" nft -f "$TMP/victim.nft"

ip netns exec "$V" "$LAB" listen --for 5m 8080 &
LISTENER=$!
sleep 0.2
say "before: the attacker reaches the victim's service"
ip netns exec "$A" "$LAB" connect 198.51.100.1 8080

say "sentry-nflog run with the repository's sentry.yaml (state_dir moved to a temporary directory)"
sed "s|^state_dir: .*|state_dir: $TMP/state|" sentry.yaml >"$TMP/sentry.yaml"
ip netns exec "$V" "$BIN" run --config "$TMP/sentry.yaml" 2>"$TMP/daemon.log" &
DAEMON=$!
for _ in $(seq 50); do grep -q 'msg=running' "$TMP/daemon.log" && break; sleep 0.1; done
grep -q 'msg=running' "$TMP/daemon.log" || { cat "$TMP/daemon.log"; exit 1; }

say "attacker: fast SYN scan of ports 1-1024 (like nmap -sS -T4)"
ip netns exec "$A" "$LAB" synscan 198.51.100.1 1-1024
say "attacker: UDP probes from 198.51.100.3, FIN/NULL/XMAS probes from .4/.5/.6"
for i in 3 4 5 6; do ip -n "$A" addr add 198.51.100.$i/32 dev da$id; done
ip netns exec "$A" "$LAB" udp --src 198.51.100.3 198.51.100.1 53,69,123,161,500,1900
ip netns exec "$A" "$LAB" probe --src 198.51.100.4 --flags fin 198.51.100.1 31337
ip netns exec "$A" "$LAB" probe --src 198.51.100.5 --flags null 198.51.100.1 31337
ip netns exec "$A" "$LAB" probe --src 198.51.100.6 --flags xmas 198.51.100.1 31337
say "attacker: IPv6 connect scan, a new source address of 2001:db8:bad:1::/64 per port"
for i in 10 11 12 13 14 15; do
	ip netns exec "$A" "$LAB" connect --timeout 300ms --src 2001:db8:bad:1::$i 2001:db8:51::1 $((100 + i)) >/dev/null || true
done
sleep 0.3

say "decisions (from the daemon's log)"
grep 'msg=decision' "$TMP/daemon.log" || { echo "no decision!"; cat "$TMP/daemon.log"; exit 1; }

say "sentry-nflog list"
ip netns exec "$V" "$BIN" list --config "$TMP/sentry.yaml"

say "after: the banned scanner cannot reach the service any more"
if ip netns exec "$A" "$LAB" connect --timeout 1s 198.51.100.1 8080; then
	echo "FAIL: 198.51.100.2 still reaches port 8080"
	exit 1
fi
if ip netns exec "$A" "$LAB" connect --timeout 1s --src 2001:db8:bad:1::99 2001:db8:51::1 8080; then
	echo "FAIL: an unused address of the banned /64 still reaches port 8080"
	exit 1
fi
echo "OK: 198.51.100.2 and all of 2001:db8:bad:1::/64 are dropped; the kernel lifts the bans by itself in 1h."
say "cleaning up (bans die with the namespaces; the host's firewall was never touched)"
