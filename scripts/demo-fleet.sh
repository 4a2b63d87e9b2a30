#!/usr/bin/env bash
# make demo-fleet: fleet mode on this kernel, without touching the host's
# own firewall. A switch namespace holds a bridge; a NATS server, three
# hosts (web1, web2, web3) and a scanner each have a namespace on it. Each
# host runs the printed logging rules, a service on port 8080 and
# `sentry-nflog run` with the repository's sentry.yaml plus a fleet
# section. The scanner sweeps web1, is banned there, and then finds web2
# and web3 closed to it as well, though it never probed them.
set -euo pipefail
BIN=${1:-bin/sentry-nflog}
LAB=${2:-bin/sentry-lab}
NATS=${3:-bin/nats-server}
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
	echo "make demo-fleet: needs root (network namespaces)."
	exit 1
fi
for tool in ip nft; do
	command -v $tool >/dev/null || { echo "make demo-fleet: $tool(8) is missing (make deps installs nft)"; exit 1; }
done

id=$$
SW=sf-sw$id
HOSTS=(srv web1 web2 web3 scan)
declare -A NS IP
for i in "${!HOSTS[@]}"; do
	NS[${HOSTS[$i]}]=sf-${HOSTS[$i]}$id
	IP[${HOSTS[$i]}]=198.51.100.$((10 + i))
done
TMP=$(mktemp -d)
PIDS=()
cleanup() {
	set +e # clean up everything, whatever fails
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	for ns in "$SW" "${NS[@]}"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

say "a segment: switch $SW, NATS server ${IP[srv]}, web1-3 ${IP[web1]}-${IP[web3]}, scanner ${IP[scan]}"
ip netns add "$SW"
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
for i in "${!HOSTS[@]}"; do
	h=${HOSTS[$i]}
	ip netns add "${NS[$h]}"
	ip -n "$SW" link add p$i$id type veth peer name eth0 netns "${NS[$h]}"
	ip -n "$SW" link set p$i$id master br0
	ip -n "$SW" link set p$i$id up
	ip -n "${NS[$h]}" addr add "${IP[$h]}/24" dev eth0
	ip -n "${NS[$h]}" link set lo up
	ip -n "${NS[$h]}" link set eth0 up
done

say "the NATS server: one node, JetStream on (the hosts create the stream)"
cat >"$TMP/nats.conf" <<EOF
server_name: demo
listen: "${IP[srv]}:4222"
jetstream: {store_dir: "$TMP/nats"}
EOF
cat "$TMP/nats.conf"
ip netns exec "${NS[srv]}" "$NATS" -c "$TMP/nats.conf" 2>"$TMP/nats.log" &
PIDS+=($!)
for _ in $(seq 50); do grep -q 'Server is ready' "$TMP/nats.log" && break; sleep 0.1; done

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
} >"$TMP/host.nft"

for h in web1 web2 web3; do
	ip netns exec "${NS[$h]}" nft -f "$TMP/host.nft"
	ip netns exec "${NS[$h]}" "$LAB" listen --for 5m 8080 &
	PIDS+=($!)
	sed "s|^state_dir: .*|state_dir: $TMP/state-$h|" sentry.yaml >"$TMP/$h.yaml"
	cat >>"$TMP/$h.yaml" <<EOF

fleet:
  servers: [nats://${IP[srv]}:4222]
  name: $h
EOF
done
say "each host: sentry.yaml plus"
tail -4 "$TMP/web1.yaml"
for h in web1 web2 web3; do
	ip netns exec "${NS[$h]}" "$BIN" run --config "$TMP/$h.yaml" 2>"$TMP/$h.log" &
	PIDS+=($!)
done
for h in web1 web2 web3; do
	for _ in $(seq 100); do grep -q 'fleet: receiving bans' "$TMP/$h.log" && break; sleep 0.1; done
	grep -q 'fleet: receiving bans' "$TMP/$h.log" || { cat "$TMP/$h.log"; exit 1; }
done
sleep 0.2

say "before: the scanner reaches the service on web2 and web3"
for h in web2 web3; do ip netns exec "${NS[scan]}" "$LAB" connect "${IP[$h]}" 8080; done

say "the scanner sweeps web1: SYN scan of ports 1-1024"
ip netns exec "${NS[scan]}" "$LAB" synscan "${IP[web1]}" 1-1024
sleep 0.3

say "web1 decided (its log)"
grep 'msg=decision' "$TMP/web1.log" || { echo "no decision!"; cat "$TMP/web1.log"; exit 1; }
for h in web2 web3; do
	say "$h applied web1's ban (its log)"
	grep 'fleet: applied a remote ban' "$TMP/$h.log" || { echo "not applied!"; cat "$TMP/$h.log"; exit 1; }
done

say "after: the scanner tries web2 and web3, which it never probed"
for h in web2 web3; do
	if ip netns exec "${NS[scan]}" "$LAB" connect --timeout 1s "${IP[$h]}" 8080; then
		echo "FAIL: the scanner still reaches $h"
		exit 1
	fi
	echo "dropped by $h"
done

for h in web1 web2 web3; do
	say "sentry-nflog list on $h"
	ip netns exec "${NS[$h]}" "$BIN" list --config "$TMP/$h.yaml"
done
say "sentry-nflog list --fleet (the stream, from web3)"
ip netns exec "${NS[web3]}" "$BIN" list --fleet --config "$TMP/web3.yaml"
say "cleaning up (bans die with the namespaces; the host's firewall was never touched)"
