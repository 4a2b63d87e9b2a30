//go:build linux

package actions

import (
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"golang.org/x/sys/unix"
)

// listenSets are the sets listen_tcp and listen_udp: the ports something
// listens on (on a non-loopback address), read by advanced mode and first
// strike, whose chains return early for them.
type listenSets struct{ tcp, udp *nftables.Set }

func newListenSets(t *nftables.Table) listenSets {
	return listenSets{
		tcp: &nftables.Set{Table: t, Name: SetListenTCP, KeyType: nftables.TypeInetService},
		udp: &nftables.Set{Table: t, Name: SetListenUDP, KeyType: nftables.TypeInetService},
	}
}

func (l listenSets) all() []*nftables.Set { return []*nftables.Set{l.tcp, l.udp} }

func portElements(ports []uint16) []nftables.SetElement {
	els := make([]nftables.SetElement, 0, len(ports))
	for _, p := range ports {
		els = append(els, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p)})
	}
	return els
}

// queueListen queues w's change of the listen set s.
func queueListen(c *nftables.Conn, s *nftables.Set, w listenWrite) error {
	if w.create {
		if err := c.AddSet(s, portElements(w.add)); err != nil {
			return fmt.Errorf("nftables: add set %s: %w", s.Name, err)
		}
		return nil
	}
	if len(w.del) > 0 {
		if err := c.SetDeleteElements(s, portElements(w.del)); err != nil {
			return fmt.Errorf("nftables: delete from %s: %w", s.Name, err)
		}
	}
	if len(w.add) > 0 {
		if err := c.SetAddElements(s, portElements(w.add)); err != nil {
			return fmt.Errorf("nftables: add to %s: %w", s.Name, err)
		}
	}
	return nil
}

// ports reads an inet_service set, sorted.
func (t *Table) ports(c *nftables.Conn, s *nftables.Set) ([]uint16, error) {
	els, err := c.GetSetElements(s)
	if err != nil {
		return nil, t.readError("read set "+s.Name, err)
	}
	var ps []uint16
	for _, e := range els {
		if len(e.Key) == 2 {
			ps = append(ps, binaryutil.BigEndian.Uint16(e.Key))
		}
	}
	return sortedPorts(ps), nil
}

// SetListening makes the listen sets hold exactly the given TCP and UDP
// ports, and Spec().Listen say so: first strike never counts, and advanced
// mode never logs, a probe of a port something listens on, so a client of
// several services is not a scan. The daemon calls it every few seconds
// with hostinfo.Paths.Listening. It reads the sets and applies the
// difference in one batch, sending nothing when there is none; sets
// someone deleted are made again. Without first strike and advanced mode
// in Spec it only records the ports, for the next Apply. The slices are
// not kept.
func (t *Table) SetListening(tcp, udp []uint16) error {
	want := ListenPorts{TCP: tcp, UDP: udp}.normalize()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errClosed
	}
	if !t.spec.usesListen() {
		t.spec.Listen = want
		t.followSpec()
		return nil
	}
	err := t.syncListen(want)
	if e := errnoOf(err); e == unix.ENOENT || e == unix.EEXIST {
		// Someone else edited the sets, or deleted them: read again.
		err = t.syncListen(want)
	}
	if err != nil {
		return err
	}
	t.spec.Listen = want
	t.followSpec()
	return nil
}

func (t *Table) syncListen(want ListenPorts) error {
	c, err := t.ready()
	if err != nil {
		return err
	}
	l := newListenSets(t.table)
	var writes [2]listenWrite
	var summary []string
	for i, sw := range []struct {
		s    *nftables.Set
		want []uint16
	}{{l.tcp, want.TCP}, {l.udp, want.UDP}} {
		have, err := t.ports(c, sw.s)
		switch {
		case errnoOf(err) == unix.ENOENT:
			writes[i] = listenWrite{create: true, add: sw.want}
			summary = append(summary, fmt.Sprintf("%s made with %d", sw.s.Name, len(sw.want)))
			continue
		case err != nil:
			return err
		}
		w := &writes[i]
		w.add, w.del = portDiff(have, sw.want)
		if len(w.add) > 0 || len(w.del) > 0 {
			summary = append(summary, fmt.Sprintf("%s +%d -%d", sw.s.Name, len(w.add), len(w.del)))
		}
	}
	if len(summary) == 0 {
		return nil
	}
	return t.commit(func() string { return "update listen sets (" + strings.Join(summary, ", ") + ")" }, func(c *nftables.Conn) error {
		if writes[0].create || writes[1].create {
			c.AddTable(t.table)
		}
		for i, s := range l.all() {
			if err := queueListen(c, s, writes[i]); err != nil {
				return err
			}
		}
		return nil
	})
}
