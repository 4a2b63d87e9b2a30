package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/daemon"
	"github.com/sentry-nflog/sentry-nflog/fleet"
)

// What a Command's methods return, once they have reported the cause on
// Err: the caller turns them into an exit status and prints nothing more.
var (
	// ErrUsage is a request the command cannot take as it is (exit
	// status 2).
	ErrUsage = errors.New("usage error")
	// ErrFailed is a failure doing what was asked, or part of it (exit
	// status 1).
	ErrFailed = errors.New("failed")
)

// Table is what the commands need of the kernel's table: *actions.Table
// has it.
type Table interface {
	List() ([]actions.BanEntry, error)
	Counters() (actions.Counters, error)
	StrikeSets() ([]actions.StrikeSet, error)
	BanManual(key netip.Prefix, timeout time.Duration) error
	Unblock(key netip.Prefix) ([]netip.Prefix, error)
	Forget(key netip.Prefix) error
	Close() error
}

// Fleet is what the commands need of the fleet's stream: *fleet.Link has
// it.
type Fleet interface {
	Active(ctx context.Context) ([]fleet.Message, error)
	PublishPardon(ctx context.Context, key netip.Prefix, at time.Time, keep time.Duration) error
	Close() error
}

// Command is one operator command run: its name, its output streams and
// its ways out of the process. Its methods are the commands (list.go,
// block.go, unblock.go, history.go, status.go).
type Command struct {
	// Name leads each line written to Err ("block: refused: ...").
	Name string
	// Out receives what the command did, Err what went wrong and notes.
	Out, Err io.Writer
	// OpenTable opens the config's table; DialFleet connects to its
	// fleet (the config has a fleet section). New sets the real ones.
	OpenTable func(*config.Config) (Table, error)
	DialFleet func(*config.Config) (Fleet, error)
	// Host is the host whose addresses block never bans.
	Host daemon.Host
}

// New returns the command name writing to out and errw, with the real
// table, fleet and host.
func New(name string, out, errw io.Writer, host daemon.Host) *Command {
	return &Command{Name: name, Out: out, Err: errw, OpenTable: OpenTable, DialFleet: DialFleet, Host: host}
}

// printf writes a line of what was done.
func (c *Command) printf(format string, a ...any) {
	fmt.Fprintf(c.Out, "%s\n", fmt.Sprintf(format, a...))
}

// errorf writes a line of what went wrong, led by the command's name.
func (c *Command) errorf(format string, a ...any) {
	fmt.Fprintf(c.Err, "%s: %s\n", c.Name, fmt.Sprintf(format, a...))
}

// writeJSON writes v as indented JSON, what every command's --json prints.
// A write that fails (standard output closed, a full disk) fails the
// command.
func (c *Command) writeJSON(v any) error {
	enc := json.NewEncoder(c.Out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return c.fail(err)
	}
	return nil
}

// fail reports err and returns ErrFailed.
func (c *Command) fail(err error) error {
	c.errorf("%v", err)
	return ErrFailed
}

// OpenTable opens cfg's table for a command.
func OpenTable(cfg *config.Config) (Table, error) {
	spec := daemon.TableSpec(cfg)
	// First strike's provisional timeout tells its bans in blocked4 (no
	// comment: the packet path cannot write one) from an administrator's.
	if fc, _, ok := daemon.StrikeConfig(cfg); ok {
		spec.FirstStrike = &fc
	}
	t, err := actions.OpenTable(spec, 0)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// DialFleet connects a command to the fleet of cfg, which has a fleet
// section.
func DialFleet(cfg *config.Config) (Fleet, error) {
	link, err := fleet.Dial(cfg.Fleet.Link(nil))
	if err != nil {
		return nil, err
	}
	return link, nil
}

// ParseKey reads what an operator names to block, unblock or look up: an
// address (its /32 or /128) or a prefix (masked). An IPv4-mapped address
// is taken as IPv4; an address with a zone is refused.
func ParseKey(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParseKeys reads each of args with ParseKey.
func ParseKeys(args []string) ([]netip.Prefix, error) {
	keys := make([]netip.Prefix, 0, len(args))
	for _, a := range args {
		p, err := ParseKey(a)
		if err != nil {
			return nil, err
		}
		keys = append(keys, p)
	}
	return keys, nil
}
