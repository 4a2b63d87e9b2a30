package firewall

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
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
	Write(&b, in, Options{Prefix: "SENTRY", IPTables: true, RulesOnly: true})
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

// The whole text of both forms, explanation included, is what operators
// paste: it changes only on purpose (go test ./firewall -update).
func TestWriteGolden(t *testing.T) {
	in := config.NFLOGInput{Group: 7, CopyRange: 128}
	for _, tc := range []struct {
		golden string
		o      Options
	}{
		{"nft.txt", Options{Prefix: DefaultLogPrefix}},
		{"iptables.txt", Options{Prefix: DefaultLogPrefix, IPTables: true}},
		{"iptables-quoted.txt", Options{Prefix: "probe: ", IPTables: true, RulesOnly: true}},
	} {
		var b bytes.Buffer
		Write(&b, in, tc.o)
		testkit.Golden(t, filepath.Join("testdata", tc.golden), b.Bytes())
	}
}
