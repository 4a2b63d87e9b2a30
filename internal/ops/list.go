package ops

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/daemon"
)

// List is `list`: the bans in cfg's table, the longest time left first,
// each with where it came from (a manual ban with its reason, read from
// state_dir), then what the drop rules have stopped and which first-strike
// sets are or were full; as a table or as JSON. A table that does not
// exist yet holds no ban.
func (c *Command) List(cfg *config.Config, asJSON bool) error {
	t, err := c.OpenTable(cfg)
	if err != nil {
		return c.fail(err)
	}
	defer t.Close()
	bans, err := t.List()
	if errors.Is(err, syscall.ENOENT) {
		// No table yet: the daemon has not run in this namespace.
		c.errorf("table inet %s does not exist: the daemon has not run here, nothing is banned", cfg.NFTables.Table)
		bans, err = nil, nil
	}
	if err != nil {
		return c.fail(err)
	}
	sort.Slice(bans, func(i, j int) bool { return bans[i].Expires > bans[j].Expires })
	blocks := readBlocks(cfg.StateDir)
	reasons := reasonsOf(blocks)
	inside := takenIn(blocks, bans, time.Now())
	counters, cerr := t.Counters()
	strikeSets := strikeSetsOf(t.StrikeSets)
	if asJSON {
		type ban struct {
			Source      string `json:"source"`
			LeftSeconds int64  `json:"left_seconds"`
			BanSeconds  int64  `json:"ban_seconds"`
			Origin      string `json:"origin"`
			By          string `json:"by,omitempty"`
			Reason      string `json:"reason,omitempty"`
		}
		type within struct {
			Source       string `json:"source"`
			LeftSeconds  int64  `json:"left_seconds"`
			BanSeconds   int64  `json:"ban_seconds"`
			Reason       string `json:"reason,omitempty"`
			Inside       string `json:"inside"`
			InsideOrigin string `json:"inside_origin"`
		}
		type dropped struct {
			Packets4 uint64 `json:"packets4"`
			Bytes4   uint64 `json:"bytes4"`
			Packets6 uint64 `json:"packets6"`
			Bytes6   uint64 `json:"bytes6"`
		}
		out := struct {
			Table      string          `json:"table"`
			Bans       []ban           `json:"bans"`
			Inside     []within        `json:"manual_inside,omitempty"`
			Counters   *dropped        `json:"counters,omitempty"`
			StrikeSets []strikeSetJSON `json:"first_strike_full,omitempty"`
		}{Table: "inet " + cfg.NFTables.Table, Bans: []ban{}, StrikeSets: strikeSets}
		for _, in := range inside {
			out.Inside = append(out.Inside, within{Source: in.block.Key.String(), LeftSeconds: int64(in.left.Round(time.Second) / time.Second),
				BanSeconds: int64(in.block.Until.Sub(in.block.At).Round(time.Second) / time.Second), Reason: in.block.Reason,
				Inside: in.around.Key.String(), InsideOrigin: in.around.Origin})
		}
		for _, b := range bans {
			jb := ban{Source: b.Key.String(), LeftSeconds: int64(b.Expires / time.Second), BanSeconds: int64(b.Timeout / time.Second), Origin: b.Origin}
			switch b.Origin {
			case actions.OriginBlock:
				jb.Origin, jb.By, jb.Reason = actions.OriginManual, "block", reasons.of(b.Key)
			case actions.OriginManual:
				jb.By = "nft"
			}
			out.Bans = append(out.Bans, jb)
		}
		if cerr == nil && cfg.NFTables.ManageChain {
			out.Counters = &dropped{counters.Packets4, counters.Bytes4, counters.Packets6, counters.Bytes6}
		}
		return c.writeJSON(out)
	}
	c.printf("%d active bans in inet %s", len(bans), cfg.NFTables.Table)
	if len(bans) > 0 {
		tw := tabwriter.NewWriter(c.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SOURCE\tTIME LEFT\tBAN\tBY")
		for _, b := range bans {
			by := b.Origin
			switch b.Origin {
			case actions.OriginKernel:
				by = "kernel (first strike, provisional)"
			case actions.OriginManual:
				by = "manual (added with nft; never changed by sentry-nflog)"
			case actions.OriginBlock:
				by = "manual (block)"
				if r := reasons.of(b.Key); r != "" {
					by = fmt.Sprintf("manual (block: %s)", r)
				}
			}
			left, full := actions.FormatDuration(b.Expires.Round(time.Second)), actions.FormatDuration(b.Timeout)
			if b.Timeout == 0 {
				left, full = "-", "no timeout"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Key, left, full, by)
		}
		tw.Flush()
	}
	if len(inside) > 0 {
		c.printf("manual bans inside a wider ban, which holds their addresses until it ends:")
		tw := tabwriter.NewWriter(c.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SOURCE\tTIME LEFT\tBAN\tBY\tINSIDE")
		for _, in := range inside {
			by := "manual (block)"
			if in.block.Reason != "" {
				by = fmt.Sprintf("manual (block: %s)", in.block.Reason)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s (%s, %s left)\n", in.block.Key, actions.FormatDuration(in.left.Round(time.Second)),
				actions.FormatDuration(in.block.Until.Sub(in.block.At).Round(time.Second)), by,
				in.around.Key, in.around.Origin, actions.FormatDuration(in.around.Expires.Round(time.Second)))
		}
		tw.Flush()
	}
	if cerr == nil && cfg.NFTables.ManageChain {
		c.printf("dropped: IPv4 %d packets (%d bytes), IPv6 %d packets (%d bytes)",
			counters.Packets4, counters.Bytes4, counters.Packets6, counters.Bytes6)
	}
	for _, s := range strikeSets {
		state := "was full"
		if s.Full {
			state = "is FULL"
		}
		c.printf("first strike: set %s %s (%d of %d elements); %d probes it could not count were dropped unanswered",
			s.Set, state, s.Elements, s.Size, s.FullDrops)
	}
	return nil
}

// strikeSetJSON is one first-strike counting set in `list --json`, listed
// when it is full or has been.
type strikeSetJSON struct {
	Set       string `json:"set"`
	Elements  int    `json:"elements"`
	Size      int    `json:"size"`
	Full      bool   `json:"full"`
	FullDrops uint64 `json:"full_drops"`
}

// strikeSetsOf reads first strike's counting sets and keeps those full now
// or full before (a set the daemon emptied shows by its drops). An error
// or a table without first strike is none.
func strikeSetsOf(sets func() ([]actions.StrikeSet, error)) []strikeSetJSON {
	all, err := sets()
	if err != nil {
		return nil
	}
	var out []strikeSetJSON
	for _, s := range all {
		if s.Full() || s.FullDrops > 0 {
			out = append(out, strikeSetJSON{Set: s.Name, Elements: s.Elements, Size: s.Size, Full: s.Full(), FullDrops: s.FullDrops})
		}
	}
	return out
}

// blockReasons finds the reason of a manual ban's element: the record of
// its key, or of a prefix holding it (a forced IPv4 prefix is banned as
// its keys).
type blockReasons map[netip.Prefix]string

// readBlocks reads the manual bans recorded in stateDir; without them
// (unreadable as this user), list shows manual bans without reasons.
func readBlocks(stateDir string) []daemon.Block {
	bs, err := daemon.ReadBlocks(stateDir)
	if err != nil {
		return nil
	}
	return bs
}

// reasonsOf returns the reasons of the manual bans bs.
func reasonsOf(bs []daemon.Block) blockReasons {
	r := blockReasons{}
	for _, b := range bs {
		r[b.Key] = b.Reason
	}
	return r
}

// insideBan is a manual ban in force that no element of its own holds: a
// wider ban of another origin around it, which outlives it, took it in
// (the daemon does not split its range for a ban that ends sooner), and
// holds its addresses.
type insideBan struct {
	block  daemon.Block
	left   time.Duration
	around actions.BanEntry
}

// takenIn returns the manual bans of bs in force at now that no element
// of bans holds as a manual ban, each with the wider ban of bans around
// it; the longest time left first. Both lists can hold tens of thousands:
// prefixes are looked up, length by length, not compared pair by pair.
func takenIn(bs []daemon.Block, bans []actions.BanEntry, now time.Time) []insideBan {
	byKey := make(map[netip.Prefix]actions.BanEntry, len(bans))
	for _, e := range bans {
		byKey[e.Key] = e
	}
	// held: the blocks in force with a manual element at their key or
	// inside it (a forced prefix is banned as its keys); one inside a
	// manual element is held by it (narrowestAround, below).
	inForce := map[netip.Prefix]bool{}
	for _, b := range bs {
		if b.Until.After(now) {
			inForce[b.Key] = true
		}
	}
	held := map[netip.Prefix]bool{}
	for _, e := range bans {
		if e.Origin != actions.OriginBlock {
			continue
		}
		for bits := e.Key.Bits(); bits >= 0; bits-- {
			if p, _ := e.Key.Addr().Prefix(bits); inForce[p] {
				held[p] = true
			}
		}
	}
	var out []insideBan
	for _, b := range bs {
		if !b.Until.After(now) || held[b.Key] {
			continue
		}
		if e, ok := narrowestAround(byKey, b.Key); ok && e.Origin != actions.OriginBlock {
			out = append(out, insideBan{block: b, left: b.Until.Sub(now), around: e})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].left > out[j].left })
	return out
}

func (r blockReasons) of(key netip.Prefix) string {
	if len(r) == 0 {
		return ""
	}
	for bits := key.Bits(); bits >= 0; bits-- {
		p, _ := key.Addr().Prefix(bits)
		if reason, ok := r[p]; ok {
			return reason
		}
	}
	return ""
}

// narrowestAround returns the ban of byKey around key (wider than it)
// with the longest prefix.
func narrowestAround(byKey map[netip.Prefix]actions.BanEntry, key netip.Prefix) (actions.BanEntry, bool) {
	for bits := key.Bits() - 1; bits >= 0; bits-- {
		p, _ := key.Addr().Prefix(bits)
		if e, ok := byKey[p]; ok {
			return e, true
		}
	}
	return actions.BanEntry{}, false
}
