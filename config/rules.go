package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

var reName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func (l *loader) rules(raw *rawConfig, cfg *Config) {
	if len(raw.Rules) == 0 {
		l.addAt("rules", "at least one rule is required")
		return
	}
	if len(raw.Rules) > rules.MaxRules {
		l.addAt("rules", "%d rules, at most %d", len(raw.Rules), rules.MaxRules)
		return
	}
	names := map[string]bool{}
	for i := range raw.Rules {
		rr := &raw.Rules[i]
		path := fmt.Sprintf("rules[%d]", i)
		var r rules.Rule
		switch {
		case !rr.Name.Set || rr.Name.V == "":
			l.addAt(path, "name is required")
		case !reName.MatchString(rr.Name.V):
			l.add(rr.Name.Line, rr.Name.Col, path+".name", "%q: use letters, digits, '-', '_' and '.'", rr.Name.V)
		case names[rr.Name.V]:
			l.add(rr.Name.Line, rr.Name.Col, path+".name", "rule name %q used twice", rr.Name.V)
		}
		names[rr.Name.V] = true
		r.Name = rr.Name.V
		for j, p := range rr.Prefix.Items {
			if p.V == "" || len(p.V) > 127 {
				l.add(p.Line, p.Col, fmt.Sprintf("%s.prefix[%d]", path, j), "a log prefix is 1-127 characters")
				continue
			}
			r.Prefixes = append(r.Prefixes, rules.Pattern(strings.TrimRight(strings.TrimSpace(p.V), ":")))
		}
		tcpOnly := true
		for j, p := range rr.Proto.Items {
			n, ok := parseProto(p.V)
			if !ok {
				l.add(p.Line, p.Col, fmt.Sprintf("%s.proto[%d]", path, j), "unknown protocol %q (want tcp, udp, icmp, icmpv6, sctp, udplite or a number 0-255)", p.V)
				continue
			}
			tcpOnly = tcpOnly && n == parsers.ProtoTCP
			r.Protos = append(r.Protos, n)
		}
		if len(rr.Ports.Items) > 0 {
			r.Ports = new(rules.PortSet)
			for j, p := range rr.Ports.Items {
				if err := addPorts(r.Ports, p.V); err != nil {
					l.add(p.Line, p.Col, fmt.Sprintf("%s.ports[%d]", path, j), "%v", err)
				}
			}
		}
		for j, f := range rr.Flags.Items {
			c, err := rules.ParseFlagClass(f.V)
			if err != nil {
				l.add(f.Line, f.Col, fmt.Sprintf("%s.flags[%d]", path, j), "%v", err)
				continue
			}
			r.Flags |= c
		}
		if r.Flags != 0 && (len(r.Protos) == 0 || !tcpOnly) {
			if len(r.Protos) == 0 {
				r.Protos = []uint8{parsers.ProtoTCP}
			} else {
				l.add(rr.Flags.Line, rr.Flags.Col, path+".flags", "TCP flag classes need proto: tcp")
			}
		}
		for j, f := range rr.Interface.Items {
			name := strings.TrimSuffix(f.V, "*")
			if f.V == "" || len(name) > 15 || strings.ContainsAny(name, " /*") {
				l.add(f.Line, f.Col, fmt.Sprintf("%s.interface[%d]", path, j), "%q is not an interface name (up to 15 characters, optional trailing '*')", f.V)
				continue
			}
			r.Interfaces = append(r.Interfaces, rules.Pattern(f.V))
		}
		th := rr.Threshold
		tpath := path + ".threshold"
		if th.Hits.Set {
			if th.Hits.V < 1 || th.Hits.V > rules.MaxHits {
				l.add(th.Hits.Line, th.Hits.Col, tpath+".hits", "%d out of range 1-%d", th.Hits.V, rules.MaxHits)
			}
			r.Hits = th.Hits.V
		}
		if th.DistinctPorts.Set {
			if th.DistinctPorts.V < 1 || th.DistinctPorts.V > rules.MaxDistinctPorts {
				l.add(th.DistinctPorts.Line, th.DistinctPorts.Col, tpath+".distinct_ports", "%d out of range 1-%d", th.DistinctPorts.V, rules.MaxDistinctPorts)
			}
			r.DistinctPorts = th.DistinctPorts.V
		}
		if th.DistinctProtos.Set {
			if th.DistinctProtos.V < 1 || th.DistinctProtos.V > rules.MaxDistinctProtos {
				l.add(th.DistinctProtos.Line, th.DistinctProtos.Col, tpath+".distinct_protos", "%d out of range 1-%d", th.DistinctProtos.V, rules.MaxDistinctProtos)
			}
			r.DistinctProtos = th.DistinctProtos.V
		}
		if !th.Hits.Set && !th.DistinctPorts.Set && !th.DistinctProtos.Set {
			l.addAt(tpath, "needs hits, distinct_ports or distinct_protos (hits: 1 bans on the first packet)")
		}
		if th.Within.Set {
			if d, ok := l.duration(tpath+".within", th.Within.V); ok {
				if d <= 0 {
					l.addAt(tpath+".within", "must be positive")
				}
				r.Within = d
			}
		} else if !r.Tripwire() {
			l.addAt(tpath, "needs within, the sliding window (such as 60s)")
		}
		if !rr.Ban.Set {
			l.addAt(path, "ban (a duration such as 1h) is required")
		} else if d, ok := l.duration(path+".ban", rr.Ban.V); ok {
			if d < time.Second {
				l.addAt(path+".ban", "%s: a ban is at least 1s", rr.Ban.V)
			}
			r.Ban = d
		}
		cfg.Engine.Rules = append(cfg.Engine.Rules, r)
	}
}
