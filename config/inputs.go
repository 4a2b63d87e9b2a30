package config

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

func (l *loader) inputs(raw *rawConfig, cfg *Config) {
	in := &cfg.Inputs
	if raw.Inputs.NFLOG == nil {
		in.NFLOG = []NFLOGInput{defaultNFLOG(DefaultNFLOGGroup)}
	}
	groups := map[int]bool{}
	for i, r := range derefNFLOG(raw.Inputs.NFLOG) {
		path := fmt.Sprintf("inputs.nflog[%d]", i)
		if !r.Group.Set {
			l.addAt(path, "group is required")
			continue
		}
		if r.Group.V < 0 || r.Group.V > math.MaxUint16 {
			l.addAt(path+".group", "NFLOG group %d out of range 0-65535", r.Group.V)
			continue
		}
		if groups[r.Group.V] {
			l.addAt(path+".group", "group %d listed twice", r.Group.V)
		}
		groups[r.Group.V] = true
		n := defaultNFLOG(uint16(r.Group.V))
		if r.CopyRange.Set {
			if r.CopyRange.V < 40 || r.CopyRange.V > 65535 {
				l.addAt(path+".copy_range", "%d out of range 40-65535 (bytes of each packet copied; 128 holds the IP and transport headers)", r.CopyRange.V)
			}
			n.CopyRange = uint16(r.CopyRange.V)
		}
		if r.QueueThreshold.Set {
			if r.QueueThreshold.V < 1 || r.QueueThreshold.V > 1000 {
				l.addAt(path+".queue_threshold", "%d out of range 1-1000", r.QueueThreshold.V)
			}
			n.QueueThreshold = uint32(r.QueueThreshold.V)
		}
		if r.FlushTimeout.Set {
			d, ok := l.duration(path+".flush_timeout", r.FlushTimeout.V)
			if ok && (d < 0 || d > 10*time.Second || d%(10*time.Millisecond) != 0) {
				l.addAt(path+".flush_timeout", "%s: want a multiple of 10ms up to 10s (the kernel counts it in 1/100 s)", r.FlushTimeout.V)
			}
			n.FlushTimeout = d
		}
		if r.ReadBuffer.Set {
			b, err := parseSize(r.ReadBuffer.V)
			if err != nil || b < 64<<10 || b > 1<<30 {
				l.addAt(path+".read_buffer", "%q: want a size between 64KiB and 1GiB, such as 8MiB", r.ReadBuffer.V)
			}
			n.ReadBuffer = b
		}
		if r.Adaptive.Set {
			n.AdaptiveBatching = r.Adaptive.V
		}
		in.NFLOG = append(in.NFLOG, n)
	}
	for i, f := range raw.Inputs.Files.Items {
		if !strings.HasPrefix(f.V, "/") {
			l.add(f.Line, f.Col, fmt.Sprintf("inputs.files[%d]", i), "must be an absolute path, got %q", f.V)
		}
		in.Files = append(in.Files, f.V)
	}
	in.Kmsg = raw.Inputs.Kmsg.V
}

func derefNFLOG(p *[]rawNFLOG) []rawNFLOG {
	if p == nil {
		return nil
	}
	return *p
}

func defaultNFLOG(group uint16) NFLOGInput {
	return NFLOGInput{
		Group: group, CopyRange: DefaultCopyRange, QueueThreshold: DefaultQueueThreshold,
		FlushTimeout: DefaultFlushTimeout, ReadBuffer: DefaultReadBuffer, AdaptiveBatching: true,
	}
}

func (l *loader) ignore(raw *rawConfig, cfg *Config) {
	items := raw.Ignore
	if items == nil {
		items = &list{}
		for _, w := range strings.Fields(defaultIgnore) {
			items.Items = append(items.Items, field[string]{V: w})
		}
	}
	for i, it := range items.Items {
		path := fmt.Sprintf("ignore[%d]", i)
		switch it.V {
		case "self":
			cfg.Ignore.Self = true
			continue
		case "gateways":
			cfg.Ignore.Gateways = true
			continue
		case "resolvers":
			cfg.Ignore.Resolvers = true
			continue
		}
		p, err := parsePrefix(it.V)
		if err != nil {
			l.add(it.Line, it.Col, path, "%v (want a CIDR such as 192.0.2.0/24, an address, or one of self, gateways, resolvers)", err)
			continue
		}
		cfg.Ignore.Prefixes = append(cfg.Ignore.Prefixes, p)
	}
	cfg.Engine.Ignore = cfg.Ignore.Prefixes
	cfg.Engine.AcceptPrefixes = rules.DefaultAcceptPrefixes()
	if raw.AcceptPrefixes != nil {
		cfg.Engine.AcceptPrefixes = nil
		for i, it := range raw.AcceptPrefixes.Items {
			if err := rules.CheckAcceptPrefixes([]string{it.V}); err != nil {
				l.add(it.Line, it.Col, fmt.Sprintf("accept_prefixes[%d]", i), "%v", err)
				continue
			}
			cfg.Engine.AcceptPrefixes = append(cfg.Engine.AcceptPrefixes, it.V)
		}
	}
}
