package firewall

import (
	"fmt"
	"io"
	"strconv"

	"github.com/sentry-nflog/sentry-nflog/config"
)

// DefaultLogPrefix is the log prefix the rules use unless told otherwise.
const DefaultLogPrefix = "SENTRY"

// Options say which rules Write writes.
type Options struct {
	// Prefix is the log prefix of the rules (rules may select on it).
	Prefix string
	// IPTables writes iptables and ip6tables commands instead of nft
	// rules.
	IPTables bool
	// RulesOnly leaves out the explanation, for scripts.
	RulesOnly bool
}

// Write writes the rules that log probes to the NFLOG group of in.
func Write(w io.Writer, in config.NFLOGInput, o Options) {
	if o.IPTables {
		writeIptables(w, in, o.Prefix, o.RulesOnly)
	} else {
		writeNft(w, in, o.Prefix, o.RulesOnly)
	}
}

// NftLogRules returns the nft rules (one per line) that log probes to the
// group of in. TCP takes ct state invalid too: a segment that opens no
// connection and belongs to none (FIN, NULL, XMAS, ACK, SYN+FIN ...) never
// makes a conntrack entry, or only an invalid one. Every other protocol but
// ICMP is logged too, new or invalid and addressed to this host alone: a
// protocol scan (nmap -sO) or an SCTP scan (-sY) probes with them, and
// nothing here answers them but the kernel's "protocol unreachable". ICMP
// is left out: pings and errors are no scan of ports. The rules set no
// queue-threshold: the kernel would cap the daemon's own setting with it,
// and the daemon delivers each packet at once when calm but batches under a
// flood, which a rule-side cap would turn into loss.
func NftLogRules(in config.NFLOGInput, prefix string) []string {
	log := fmt.Sprintf("log prefix %s group %d snaplen %d", strconv.Quote(prefix), in.Group, in.CopyRange)
	return []string{
		"meta l4proto tcp ct state new,invalid counter " + log,
		"meta l4proto udp ct state new counter " + log,
		"meta l4proto != { tcp, udp, icmp, ipv6-icmp } meta pkttype host ct state new,invalid counter " + log,
	}
}

func writeNft(w io.Writer, in config.NFLOGInput, prefix string, rulesOnly bool) {
	if !rulesOnly {
		fmt.Fprintf(w, `# sentry-nflog: log probes of unused ports to NFLOG group %d.
# Put these rules in your input chain AFTER the rules that accept
# established traffic and your services, so only packets nothing here
# answers reach them. For example, in /etc/nftables.conf:
#
#   table inet filter {
#     chain input {
#       type filter hook input priority filter; policy drop;
#       ct state established,related accept
#       iif lo accept
#       tcp dport { 22, 80, 443 } accept
#       # ... the sentry-nflog rules below ...
#     }
#   }
#
# or add them to a running ruleset (inet filter input here):
#   nft add rule inet filter input meta l4proto tcp ct state new,invalid log ...
# (one "nft add rule" per line below).
`, in.Group)
	}
	for _, r := range NftLogRules(in, prefix) {
		fmt.Fprintln(w, r)
	}
}

func writeIptables(w io.Writer, in config.NFLOGInput, prefix string, rulesOnly bool) {
	if !rulesOnly {
		fmt.Fprintf(w, `# sentry-nflog: log probes of unused ports to NFLOG group %d.
# Append these AFTER the rules that accept established traffic and your
# services (-A adds at the end of INPUT; use -I INPUT <position> to place
# them before a final DROP/REJECT rule). Save them with your usual tool
# (netfilter-persistent save, iptables-save > /etc/iptables/rules.v4, ...).
# There is no --nflog-threshold on purpose: sentry-nflog sets the queue
# threshold itself (each packet at once when calm, batches under a flood);
# a threshold on the rule would cap it and turn floods into loss.
# The chain SENTRY-LOG logs TCP (new or invalid), UDP (new) and every other
# protocol but ICMP (new or invalid, to this host only): protocol and SCTP
# scans probe with those.
`, in.Group)
	}
	nflog := fmt.Sprintf("-j NFLOG --nflog-group %d --nflog-prefix %s --nflog-size %d", in.Group, shellQuote(prefix), in.CopyRange)
	for _, f := range []struct{ bin, icmp string }{{"iptables", "icmp"}, {"ip6tables", "ipv6-icmp"}} {
		fmt.Fprintf(w, "%s -N SENTRY-LOG\n", f.bin)
		fmt.Fprintf(w, "%s -A SENTRY-LOG -p tcp -m conntrack --ctstate NEW,INVALID %s\n", f.bin, nflog)
		fmt.Fprintf(w, "%s -A SENTRY-LOG -p udp -m conntrack --ctstate NEW %s\n", f.bin, nflog)
		for _, p := range []string{"tcp", "udp", f.icmp} {
			fmt.Fprintf(w, "%s -A SENTRY-LOG -p %s -j RETURN\n", f.bin, p)
		}
		fmt.Fprintf(w, "%s -A SENTRY-LOG -m pkttype --pkt-type unicast -m conntrack --ctstate NEW,INVALID %s\n", f.bin, nflog)
		fmt.Fprintf(w, "%s -A INPUT -j SENTRY-LOG\n", f.bin)
	}
}

// shellQuote quotes s for a shell unless it is a plain word.
func shellQuote(s string) string {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "'" + s + "'"
		}
	}
	return s
}
