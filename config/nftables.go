package config

import (
	"fmt"
	"regexp"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

func (l *loader) firstStrike(raw *rawConfig, cfg *Config) {
	r := raw.FirstStrike
	fs := FirstStrike{Enabled: true, SetSize: int(actions.DefaultFirstStrikeSetSize)}
	if r.Enabled.Set {
		fs.Enabled = r.Enabled.V
	}
	if r.Provisional.Set {
		if d, ok := l.duration("first_strike.provisional", r.Provisional.V); ok {
			if d != 0 && (d < 10*time.Second || d > 24*time.Hour) {
				l.addAt("first_strike.provisional", "%s out of range 10s-24h (0: the longest window of the rules)", r.Provisional.V)
			}
			fs.Provisional = d
		}
	}
	if r.SetSize.Set {
		if r.SetSize.V < 1024 || r.SetSize.V > 1<<24 {
			l.add(r.SetSize.Line, r.SetSize.Col, "first_strike.set_size", "%d out of range 1024-16777216", r.SetSize.V)
		}
		fs.SetSize = r.SetSize.V
	}
	cfg.FirstStrike = fs
}

func (l *loader) advanced(raw *rawConfig, cfg *Config) {
	r := raw.Advanced
	if r == nil {
		return
	}
	a := &Advanced{Refresh: DefaultAdvancedRefresh, Prefix: actions.DefaultAdvancedPrefix}
	ranges := func(key string, items list) []rules.PortRange {
		var out []rules.PortRange
		for i, it := range items.Items {
			path := fmt.Sprintf("advanced.%s[%d]", key, i)
			if len(items.Items) == 1 {
				path = "advanced." + key
			}
			rs, err := parsePorts(it.V)
			if err != nil {
				l.add(it.Line, it.Col, path, "%v", err)
			}
			out = append(out, rs...)
		}
		return out
	}
	a.TCP = ranges("tcp", r.TCP)
	a.UDP = ranges("udp", r.UDP)
	if len(a.TCP) == 0 && len(a.UDP) == 0 {
		l.addAt("advanced", "watch at least one of tcp or udp (such as tcp: \"1-1023\")")
	}
	for i, e := range r.Exclude.Items {
		rs, err := parsePorts(e.V)
		if err != nil {
			l.add(e.Line, e.Col, fmt.Sprintf("advanced.exclude[%d]", i), "%v", err)
		}
		for _, r := range rs {
			for p := int(r.Lo); p <= int(r.Hi); p++ {
				a.Exclude = append(a.Exclude, uint16(p))
			}
		}
	}
	if r.Refresh.Set {
		if d, ok := l.duration("advanced.refresh", r.Refresh.V); ok {
			if d < time.Second || d > 5*time.Minute {
				l.addAt("advanced.refresh", "%s out of range 1s-5m", r.Refresh.V)
			}
			a.Refresh = d
		}
	}
	if r.Prefix.Set {
		if r.Prefix.V == "" || len(r.Prefix.V) > 63 {
			l.addAt("advanced.prefix", "a log prefix is 1-63 characters")
		}
		a.Prefix = r.Prefix.V
	}
	if len(cfg.Inputs.NFLOG) == 0 {
		l.addAt("advanced", "advanced mode logs to the first NFLOG group: inputs.nflog must list one")
	}
	cfg.Advanced = a
}

var reTable = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,31}$`)

func (l *loader) nftables(raw *rawConfig, cfg *Config) {
	n := NFTables{Table: actions.DefaultTable, Hooks: []string{actions.HookInput}, Priority: actions.DefaultPriority, ManageChain: true}
	r := raw.NFTables
	if r.Table.Set {
		if !reTable.MatchString(r.Table.V) {
			l.add(r.Table.Line, r.Table.Col, "nftables.table", "%q is not a valid table name", r.Table.V)
		}
		n.Table = r.Table.V
	}
	if r.Hooks.Set {
		n.Hooks = nil
		seen := map[string]bool{}
		for i, h := range r.Hooks.Items {
			if err := actions.CheckHook(h.V); err != nil {
				l.add(h.Line, h.Col, fmt.Sprintf("nftables.hooks[%d]", i), "%v", err)
				continue
			}
			if !seen[h.V] {
				n.Hooks = append(n.Hooks, h.V)
			}
			seen[h.V] = true
		}
		if len(n.Hooks) == 0 && len(r.Hooks.Items) == 0 {
			l.add(r.Hooks.Line, r.Hooks.Col, "nftables.hooks", "at least one hook (input) is required")
		}
	}
	if r.Priority.Set {
		if r.Priority.V < -400 || r.Priority.V > 400 {
			l.add(r.Priority.Line, r.Priority.Col, "nftables.priority", "%d out of range -400..400", r.Priority.V)
		}
		n.Priority = int32(r.Priority.V)
	}
	if r.ManageChain.Set {
		n.ManageChain = r.ManageChain.V
	}
	cfg.NFTables = n
}
