//go:build linux

package actions

import (
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// Advanced mode is Portsentry's atcp/audp without a socket: a base chain
// logs to NFLOG the new TCP connection attempts (and the FIN, NULL and
// XMAS probes conntrack marks invalid) and the new UDP datagrams that
// reach watched ports nothing listens on. It only logs: the user's
// firewall decides what happens to the packet. The chain,
// `type filter hook input priority Priority; policy accept`:
//
//	iif "lo" return
//	meta pkttype != host return
//	tcp dport @listen_tcp return
//	tcp dport @watch_tcp tcp flags & (rst | ack) == 0 ct state invalid,new counter log prefix P group G snaplen 128
//	udp dport @listen_udp return
//	udp dport @watch_udp ct state new counter log prefix P group G snaplen 128
//
// Broadcast and multicast datagrams (NetBIOS, DHCP, RIP on a LAN) are not
// probes of this host. Segments with RST or ACK are not probes either but
// backscatter (a SYN-ACK or RST answering a SYN forged with this host's
// address): logging them would let anyone get a third party banned. The
// listen sets are written with the chain (TableSpec.Listen) and kept
// current with Table.SetListening, so a service started on a watched port
// stops being reported within one refresh.

// advObjects are advanced mode's chain and watch sets.
type advObjects struct {
	cfg                *AdvancedConfig
	table              *nftables.Table
	watch              [2]*rules.PortSet // tcp, udp: watched ports minus excluded
	watchTCP, watchUDP *nftables.Set
	chain              *nftables.Chain
}

func newAdvObjects(t *nftables.Table, cfg *AdvancedConfig) *advObjects {
	return &advObjects{
		cfg:      cfg,
		table:    t,
		watch:    [2]*rules.PortSet{watchSet(cfg.TCP, cfg.Exclude), watchSet(cfg.UDP, cfg.Exclude)},
		watchTCP: &nftables.Set{Table: t, Name: SetWatchTCP, KeyType: nftables.TypeInetService, Interval: true},
		watchUDP: &nftables.Set{Table: t, Name: SetWatchUDP, KeyType: nftables.TypeInetService, Interval: true},
		chain:    baseChain(t, AdvancedChain, nftables.ChainHookInput, cfg.Priority),
	}
}

// rules returns the chain's rules.
func (a *advObjects) rules(o *objects) []*nftables.Rule {
	rule := func(es ...expr.Any) *nftables.Rule {
		return &nftables.Rule{Table: a.table, Chain: a.chain, Exprs: es}
	}
	ret := &expr.Verdict{Kind: expr.VerdictReturn}
	dport := func(proto byte, s *nftables.Set) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
		}
	}
	logTo := []expr.Any{
		&expr.Counter{},
		&expr.Log{
			Key:     1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_SNAPLEN,
			Group:   a.cfg.Group,
			Snaplen: AdvancedSnaplen,
			Data:    []byte(a.cfg.Prefix),
		},
	}
	noRSTorACK := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpRST | tcpACK}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
	}
	return []*nftables.Rule{
		// The loopback interface's index is 1 in every namespace.
		rule(&expr.Meta{Key: expr.MetaKeyIIF, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(1)},
			ret),
		rule(&expr.Meta{Key: expr.MetaKeyPKTTYPE, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.PACKET_HOST}},
			ret),
		rule(append(dport(unix.IPPROTO_TCP, o.listen.tcp), ret)...),
		rule(slices.Concat(dport(unix.IPPROTO_TCP, a.watchTCP), noRSTorACK,
			ctState(expr.CtStateBitNEW|expr.CtStateBitINVALID), logTo)...),
		rule(append(dport(unix.IPPROTO_UDP, o.listen.udp), ret)...),
		rule(slices.Concat(dport(unix.IPPROTO_UDP, a.watchUDP), ctState(expr.CtStateBitNEW), logTo)...),
	}
}
