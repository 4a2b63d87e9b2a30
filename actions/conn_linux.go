package actions

import (
	"fmt"

	"github.com/google/nftables"
)

// lasting is the one netlink connection to nf_tables that NFTables,
// Advanced and FirstStrike each keep, opened in a network namespace when
// netns is set. Its owner's mutex guards it and orders the batches on it.
type lasting struct {
	conn   *nftables.Conn
	netns  int
	closed bool
}

// open dials the connection; op prefixes the error ("advanced: ", ...).
func (l *lasting) open(op string, netns int) error {
	l.netns = netns
	c, err := dialLasting(netns)
	if err != nil {
		return &Error{Op: op + "open netlink connection", Err: err, Errno: errnoOf(err)}
	}
	l.conn = c
	return nil
}

func dialLasting(netns int) (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	return nftables.New(opts...)
}

// redial replaces the connection after an error without an errno (one we
// cannot explain), so that a reply left unread on the socket cannot answer
// the next request.
func (l *lasting) redial(err error) {
	if errnoOf(err) != 0 || l.closed {
		return
	}
	c, derr := dialLasting(l.netns)
	if derr != nil {
		return
	}
	_ = l.conn.CloseLasting()
	l.conn = c
}

// shut closes the connection once; what names the owner in the error.
func (l *lasting) shut(what string) error {
	if l.closed {
		return nil
	}
	l.closed = true
	if err := l.conn.CloseLasting(); err != nil {
		return fmt.Errorf("%s: close: %w", what, err)
	}
	return nil
}
