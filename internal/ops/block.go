package ops

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/daemon"
)

// MaxReason bounds a manual ban's reason: it is kept in state_dir, shown
// by list and written to the journal.
const MaxReason = 200

// BlockRequest is what `block` is asked.
type BlockRequest struct {
	// Targets are the addresses and prefixes to ban (ReadTargets).
	Targets []Target
	// File names the list the targets with a Line came from.
	File string
	// For is how long (--for: 90m, 12h, 7d); "" is bans.manual_ban.
	// Either is capped at bans.max_ban.
	For string
	// Reason is the operator's (CheckReason).
	Reason string
	// Force allows a prefix wider than the ban keys (never an ignored
	// address).
	Force bool
}

// Target is one address or prefix to block, with its line in the list it
// came from (0: an argument).
type Target struct {
	Key  netip.Prefix
	Line int
}

// Block is `block`: it passes every target through the daemon's checks
// (daemon.Guard, with this host's ignore list as the daemon resolves it)
// and refuses them all if one is refused; records the bans in state_dir
// (daemon.AddBlocks), so that the daemon puts back whatever the kernel
// does not take now; then inserts them in the table. A table that cannot
// be opened or does not exist leaves the bans recorded, for the daemon.
func (c *Command) Block(cfg *config.Config, req BlockRequest) error {
	dur, err := c.blockDuration(cfg, req.For)
	if err != nil {
		c.errorf("--for: %v", err)
		return ErrUsage
	}

	// A word that cannot be resolved refuses everything: the ban could
	// cover what it stands for.
	ignore, errs := daemon.ResolveIgnore(cfg, c.Host)
	if len(errs) > 0 {
		for _, err := range errs {
			c.errorf("cannot resolve the %v: refusing, since a ban could cover it (fix it, or remove the word from ignore in %s)", err, cfg.File)
		}
		return ErrFailed
	}
	guard := daemon.NewGuard(ignore, cfg.Engine)
	type planned struct {
		asked netip.Prefix
		block daemon.Block
		keys  []netip.Prefix
	}
	var plan []planned
	refused, total := 0, 0
	for _, t := range req.Targets {
		key, keys, err := guard.ManualKey(t.Key, req.Force)
		if err != nil {
			refused++
			msg := err.Error()
			if t.Line > 0 {
				msg = fmt.Sprintf("%s line %d: %s", req.File, t.Line, msg)
			}
			c.errorf("refused: %s", msg)
			continue
		}
		total += len(keys)
		plan = append(plan, planned{asked: t.Key, keys: keys,
			block: daemon.Block{Key: key, Reason: req.Reason, Force: key.Bits() < banBits(cfg, key)}})
	}
	if refused > 0 {
		c.errorf("%d of %d refused: nothing banned", refused, len(req.Targets))
		return ErrFailed
	}
	if total > daemon.MaxBlockKeys {
		c.errorf("%d bans, more than the %d one block takes: nothing banned; split the list", total, daemon.MaxBlockKeys)
		return ErrUsage
	}

	// Recorded first, so the daemon puts back whatever the kernel does not
	// take now (no table yet, a flush racing this).
	now := time.Now()
	var bs []daemon.Block
	for _, p := range plan {
		p.block.Until = now.Add(dur)
		bs = append(bs, p.block)
	}
	recorded, err := daemon.AddBlocks(cfg.StateDir, bs, now)
	if err != nil {
		c.errorf("cannot record the bans in %s: %v: nothing banned", cfg.StateDir, err)
		return ErrFailed
	}
	t, err := c.OpenTable(cfg)
	if err != nil {
		c.errorf("%v", err)
		c.errorf("recorded in %s: the daemon inserts the bans when it runs", cfg.StateDir)
		return ErrFailed
	}
	defer t.Close()
	var failed error
	noTable := false
	for i, p := range plan {
		rec := recorded[i]
		left := time.Until(rec.Until).Round(time.Second)
		var insertErr error
		for _, k := range p.keys {
			err := t.BanManual(k, left)
			if errors.Is(err, syscall.ENOENT) {
				noTable = true
				break
			}
			if err != nil {
				insertErr = err
				break
			}
		}
		what := rec.Key.String()
		if rec.Key.Bits() < p.asked.Bits() {
			what = fmt.Sprintf("%s (its ban key, bans.ipv4_prefix)", rec.Key)
		}
		if len(p.keys) > 1 {
			what = fmt.Sprintf("%s (as %d bans of /%d)", rec.Key, len(p.keys), p.keys[0].Bits())
		}
		if insertErr != nil {
			c.errorf("%s: %v (recorded: the daemon retries within 10 s)", rec.Key, insertErr)
			failed = ErrFailed
			continue
		}
		asked := p.asked.String()
		if p.asked.IsSingleIP() {
			asked = p.asked.Addr().String()
		}
		c.printf("%s: blocked %s for %s, until %s", asked, what, actions.FormatDuration(left), rec.Until.Format(time.RFC3339))
	}
	if noTable {
		c.errorf("table inet %s does not exist (the daemon has not run since boot): recorded in %s; the daemon inserts the bans when it starts", cfg.NFTables.Table, cfg.StateDir)
	}
	return failed
}

// banBits returns the ban key length of key's family.
func banBits(cfg *config.Config, key netip.Prefix) int {
	if key.Addr().Is4() {
		return cfg.Engine.Bans.IPv4Prefix
	}
	return cfg.Engine.Bans.IPv6Prefix
}

// blockDuration is --for, or bans.manual_ban; either is capped at
// bans.max_ban, with a note.
func (c *Command) blockDuration(cfg *config.Config, s string) (time.Duration, error) {
	if s == "" {
		return cfg.ManualBan, nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < time.Second {
		return 0, fmt.Errorf("%s: want 1s or more", s)
	}
	if m := cfg.Engine.Bans.MaxBan; m > 0 && d > m {
		c.errorf("--for %s is longer than bans.max_ban: banning for %s", s, actions.FormatDuration(m))
		d = m
	}
	return d, nil
}

// CheckReason refuses a reason too long, or with control characters,
// to be kept in state_dir and shown on one line.
func CheckReason(s string) error {
	if len(s) > MaxReason {
		return fmt.Errorf("%d bytes, at most %d", len(s), MaxReason)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return errors.New("control characters (a newline?) are not allowed")
	}
	return nil
}

// ReadTargets reads the arguments, then the list in file (one address or
// prefix a line, # comments; "-" is stdin, "" none): at most
// daemon.MaxBlockKeys in all.
func ReadTargets(args []string, file string, stdin io.Reader) ([]Target, error) {
	var out []Target
	for _, a := range args {
		p, err := ParseKey(a)
		if err != nil {
			return nil, err
		}
		out = append(out, Target{Key: p})
	}
	if file == "" {
		return out, nil
	}
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if len(out) == daemon.MaxBlockKeys {
			return nil, fmt.Errorf("%s: more than %d addresses and prefixes: nothing banned; split the list", file, daemon.MaxBlockKeys)
		}
		p, err := ParseKey(line)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %v", file, n, err)
		}
		out = append(out, Target{Key: p, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(out) > daemon.MaxBlockKeys {
		return nil, fmt.Errorf("more than %d addresses and prefixes: nothing banned; split the list", daemon.MaxBlockKeys)
	}
	return out, nil
}
