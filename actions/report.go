package actions

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// Report writes decisions as they happen: one readable line each, or one
// JSON object a line. It is the dry-run action of replay and `run
// --dry-run`, and is safe for concurrent use.
type Report struct {
	mu   sync.Mutex
	w    *bufio.Writer
	json bool
	buf  []byte
}

// NewReport writes to w, as JSON lines when asJSON.
func NewReport(w io.Writer, asJSON bool) *Report {
	return &Report{w: bufio.NewWriter(w), json: asJSON}
}

// DecisionJSON is the JSON shape of a decision, one object a line: the
// public contract of `replay --json`.
type DecisionJSON struct {
	Time       string   `json:"time"`
	Action     string   `json:"action"`
	Source     string   `json:"source"`
	Address    string   `json:"address"`
	Rule       string   `json:"rule"`
	BanSeconds int64    `json:"ban_seconds"`
	Hits       uint32   `json:"hits"`
	Distinct   uint32   `json:"distinct_ports"`
	Ports      []uint16 `json:"ports"`
	Proto      string   `json:"proto"`
	Flags      string   `json:"flags,omitempty"`
	FirstSeen  string   `json:"first_seen"`
	Offence    uint32   `json:"offence"`
}

// ToJSON converts a decision to its JSON shape.
func ToJSON(d *rules.Decision) DecisionJSON {
	proto := parsers.ProtoName(d.Proto)
	if proto == "" {
		proto = strconv.Itoa(int(d.Proto))
	}
	return DecisionJSON{
		Time:       d.Time.Format(time.RFC3339Nano),
		Action:     d.Action.String(),
		Source:     d.Key.String(),
		Address:    d.Source.String(),
		Rule:       d.Rule,
		BanSeconds: int64(d.Ban / time.Second),
		Hits:       d.Hits,
		Distinct:   d.DistinctPorts,
		Ports:      d.PortList(),
		Proto:      proto,
		Flags:      d.Flags.String(),
		FirstSeen:  d.FirstSeen.Format(time.RFC3339Nano),
		Offence:    d.Offence,
	}
}

// Act writes d and flushes, so a reader sees each decision as it occurs.
func (r *Report) Act(d *rules.Decision) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.json {
		r.buf = AppendJSON(r.buf[:0], d)
	} else {
		r.buf = AppendText(r.buf[:0], d)
	}
	r.buf = append(r.buf, '\n')
	r.w.Write(r.buf)
	if err := r.w.Flush(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// AppendPorts appends the decision's listed ports, comma-separated
// ("22,23,80"), to b.
func AppendPorts(b []byte, d *rules.Decision) []byte {
	for i, p := range d.Ports[:d.NPorts] {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(p), 10)
	}
	return b
}

// AppendText appends the one-line readable form of d:
//
//	2026-11-24T15:58:23Z ban 203.0.113.7/32 for 1h rule=tcp-portscan hits=6 ports=22,23,80,443,8080 (5 distinct) flags=SYN proto=TCP first=15:58:18 offence=1
func AppendText(b []byte, d *rules.Decision) []byte {
	b = d.Time.AppendFormat(b, time.RFC3339)
	b = append(b, ' ')
	b = append(b, d.Action.String()...)
	b = append(b, ' ')
	b = d.Key.AppendTo(b)
	if d.Action == rules.Ban {
		b = append(b, " for "...)
		b = append(b, FormatDuration(d.Ban)...)
	}
	b = append(b, " rule="...)
	b = append(b, d.Rule...)
	if d.Key.Bits() != d.Source.BitLen() {
		b = append(b, " addr="...)
		b = d.Source.AppendTo(b)
	}
	b = append(b, " hits="...)
	b = strconv.AppendUint(b, uint64(d.Hits), 10)
	b = append(b, " ports="...)
	b = AppendPorts(b, d)
	if d.DistinctPorts > uint32(d.NPorts) {
		b = append(b, ",..."...)
	}
	b = append(b, " ("...)
	b = strconv.AppendUint(b, uint64(d.DistinctPorts), 10)
	b = append(b, " distinct)"...)
	if d.Proto == parsers.ProtoTCP {
		b = append(b, " flags="...)
		if d.Flags == 0 {
			b = append(b, "none"...)
		} else {
			b = append(b, strings.ReplaceAll(d.Flags.String(), " ", ",")...)
		}
	}
	b = append(b, " proto="...)
	if n := parsers.ProtoName(d.Proto); n != "" {
		b = append(b, n...)
	} else {
		b = strconv.AppendUint(b, uint64(d.Proto), 10)
	}
	b = append(b, " first="...)
	b = d.FirstSeen.AppendFormat(b, time.RFC3339)
	b = append(b, " offence="...)
	b = strconv.AppendUint(b, uint64(d.Offence), 10)
	return b
}

// FormatDuration prints a ban length the way people write it: 1h, 90m,
// 2d12h, 45s.
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b []byte
	if days := d / (24 * time.Hour); days > 0 {
		b = strconv.AppendInt(b, int64(days), 10)
		b = append(b, 'd')
		d -= days * 24 * time.Hour
	}
	for _, u := range []struct {
		unit time.Duration
		c    byte
	}{{time.Hour, 'h'}, {time.Minute, 'm'}, {time.Second, 's'}} {
		if n := d / u.unit; n > 0 {
			b = strconv.AppendInt(b, int64(n), 10)
			b = append(b, u.c)
			d -= n * u.unit
		}
	}
	if len(b) == 0 {
		return d.String()
	}
	return string(b)
}
