package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sentry-nflog/sentry-nflog/config"
)

// The printed rules log every protocol but ICMP: protocol and SCTP scans
// must reach the daemon, in nft and iptables forms alike.
func TestFirewallLogsEveryProtocolButICMP(t *testing.T) {
	in := config.NFLOGInput{Group: 7, CopyRange: 128}
	nft := strings.Join(NftLogRules(in, "SENTRY"), "\n")
	for _, want := range []string{
		"meta l4proto tcp ct state new,invalid",
		"meta l4proto udp ct state new",
		"meta l4proto != { tcp, udp, icmp, ipv6-icmp } meta pkttype host ct state new,invalid",
	} {
		if !strings.Contains(nft, want) {
			t.Errorf("nft rules lack %q:\n%s", want, nft)
		}
	}
	var b bytes.Buffer
	writeIptables(&b, in, "SENTRY", true)
	ipt := b.String()
	for _, bin := range []string{"iptables", "ip6tables"} {
		icmp := map[string]string{"iptables": "icmp", "ip6tables": "ipv6-icmp"}[bin]
		for _, want := range []string{
			bin + " -A SENTRY-LOG -p " + icmp + " -j RETURN",
			bin + " -A SENTRY-LOG -m pkttype --pkt-type unicast -m conntrack --ctstate NEW,INVALID -j NFLOG",
			bin + " -A INPUT -j SENTRY-LOG",
		} {
			if !strings.Contains(ipt, want) {
				t.Errorf("iptables rules lack %q:\n%s", want, ipt)
			}
		}
	}
}
