package parsers

import (
	"bytes"
	"time"
)

// LineOptions configure a LineParser.
type LineOptions struct {
	// Reference is "now" for year inference of classic syslog timestamps
	// (which carry no year): for a live file time.Now(), for replay the
	// file's mtime. Zero means time.Now() at construction.
	Reference time.Time
	// Boot is the wall time of boot, used for bare dmesg "[12345.678901] ..."
	// lines and /dev/kmsg records, which carry only time since boot. Zero
	// means: event time = Unix epoch + uptime (relative times stay right).
	Boot time.Time
	// Location for timestamps that carry no zone: classic syslog,
	// journalctl short-precise, dmesg -T, OpenWrt logread and zone-less
	// rsyslog templates (default time.Local).
	Location *time.Location
	// Undated is the time of a firewall record that carries no timestamp at
	// all (a custom template, a relay that cut it) when no line before it
	// had one; after a dated line, such a record takes that line's time.
	// Replay passes the file's modification time. Zero leaves such a record
	// BadTime until a dated line has been read.
	Undated time.Time
	// Clock, when set, gives each record without a timestamp the time it
	// returns instead, for a followed file whose lines are read as they are
	// written (time.Now): the time of the last dated line could be hours
	// old, and a clock that stands still would gather a slow trickle of
	// packets into one window.
	Clock func() time.Time
}

// maxInterned caps the parser's string table: prefixes and interface names
// come from a handful of rules and links, but anyone who can write to the log
// (logger -t kernel) can invent more, and memory must stay bounded.
const maxInterned = 256

// LineParser reads firewall records from text: classic syslog (kern.log,
// /var/log/messages, with English or localized month names, with or
// without a host), RFC 3339 syslog with or without a zone, syslog with a
// <PRI> and RFC 5424, journalctl -k in the short, short-iso,
// short-iso-precise, short-precise, short-monotonic, json and json-seq
// formats, OpenWrt's logread, dmesg output (bare, -T or -r) and /dev/kmsg
// records, Proxmox VE's pve-firewall.log, and records relayed without the
// kernel's program tag (UniFi, EdgeOS, Shorewall, ulogd). The format is
// recognised per line, so one parser copes with a file whose format changes
// midway.
//
// Create one with NewLineParser. A LineParser holds state across lines (the
// inferred year of classic timestamps, the last line's time, interned
// strings, caches of the last header and prefix), so use one per stream and
// do not share it between goroutines. To read one stream on several, give
// each goroutine a parser and hand the state on with State, Resume and
// Span.
type LineParser struct {
	loc      *time.Location
	refYear  int
	refMonth int
	bootSec  int64
	bootNsec int64

	// state is what one line leaves for the next: the year of classic
	// timestamps and the last line's time.
	state   LineState
	undated time.Time
	clock   func() time.Time
	// span records how the lines since the last Resume used the state
	// they started from.
	span     Span
	nUndated uint64

	// Turning a zone-less civil time into an instant needs the zone rules
	// (time.Date); consecutive lines mostly share their minute, so the start
	// of the last minute is kept.
	haveMinute bool
	minuteKey  uint64
	minuteUnix int64

	// jbuf holds the decoded MESSAGE of a journal JSON line.
	jbuf []byte

	// same is the header of the last line, up to its "kernel:" tag, when
	// it was a classic syslog kernel line; sameStamp its time. A line that
	// starts with the same bytes has the same header: lines come many to
	// the second. (Its year needs no inferring again: the last line's
	// inference had the same month and day, which leaves it as it is.)
	// tagEnd is where syslogHeader found the tag. sameHit says the line
	// took the last header: its time is already the last line's.
	same      []byte
	sameStamp stamp
	tagEnd    int
	sameHit   bool

	// dst is the last destination address the fast path read.
	dst addrMemo

	strs       map[string]string
	lastPrefix string
	lastIface  string

	// prefixBytes is what came before the last event's record, when it
	// holds no "IN=" (then it is prefixStr in the event): a message that
	// starts with it and then "IN=" has its record right there, under the
	// same prefix, with no search. Lines of one rule share it.
	prefixBytes []byte
	prefixStr   string
	samePrefix  bool
}

// NewLineParser returns a parser for one stream of lines.
func NewLineParser(opts LineOptions) *LineParser {
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	ref := opts.Reference
	if ref.IsZero() {
		ref = time.Now()
	}
	ref = ref.In(loc)
	p := &LineParser{
		loc:      loc,
		refYear:  ref.Year(),
		refMonth: int(ref.Month()),
		undated:  opts.Undated,
		clock:    opts.Clock,
		strs:     make(map[string]string),
	}
	if !opts.Boot.IsZero() {
		p.bootSec = opts.Boot.Unix()
		p.bootNsec = int64(opts.Boot.Nanosecond())
	}
	return p
}

// UndatedRecords returns how many firewall records the parser has read that
// carried no timestamp and took a borrowed one (see LineOptions.Undated).
func (p *LineParser) UndatedRecords() uint64 { return p.nUndated }

// The markers of a kernel firewall record. They are constants, converted
// where used: a non-escaping []byte of a constant does not allocate.
const (
	keyIN  = "IN="
	keyOUT = " OUT="
	keySRC = " SRC="
)

// maxSame is the longest header kept to compare the next line's with.
const maxSame = 128

// recordSeparator starts each record of journalctl -o json-seq (RFC 7464).
const recordSeparator = 0x1e

// Parse fills *ev from one line (without or with trailing "\n" / "\r\n").
// It keeps no reference to line. *ev is written only when the outcome is
// Parsed; a line that is not a firewall record is Skipped, a record of a
// source without an address is UnspecifiedSource, and a firewall record that
// cannot be trusted is reported with the reason.
func (p *LineParser) Parse(line []byte, ev *Event) Outcome {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > 0 && line[0] == recordSeparator {
		line = line[1:]
	}
	if len(line) == 0 {
		return Skipped
	}

	var st stamp
	msg, res := p.header(line, &st)
	if st.kind != stampNone && res != hdrBad && !p.sameHit {
		p.state.last, p.state.haveLast = st, true
		p.span.lastSet = true
	}
	var in int
	p.samePrefix = false
	switch res {
	case hdrOther:
		return Skipped
	case hdrBad:
		// The header is unreadable, so the whole line is searched. A
		// record whose line shows a time that could not be read is
		// BadTime; one with no time at all borrows one (see Undated).
		in = findIN(line)
		if in < 0 && isDigit(line[0]) {
			in = pveRecord(line) // pvefw-logger's, with its header broken
		}
		if in < 0 || bytes.Index(line[in:], []byte(keySRC)) < 0 {
			return Skipped
		}
		if looksTimed(line[:in]) {
			return BadTime
		}
		st.kind = stampNone
		msg, res = untimedMessage(line)
		in = findIN(msg)
	case hdrPVE:
		in = pveRecord(msg)
	default:
		in = p.findIN(msg)
	}
	if in < 0 {
		return Skipped
	}
	rec := msg[in:]
	// A message that did not come from the kernel is read only when it is
	// nothing but a record: a daemon that logs what a remote peer sent
	// ("Invalid user IN=eth0 ... from 203.0.113.7 port 22") must not be
	// able to make up packets.
	if res == hdrProgram && !plausibleRecord(rec) {
		return Skipped
	}

	f := fields{pve: res == hdrPVE}
	o := Parsed
	if !f.fast(rec, &p.dst) {
		f = fields{pve: res == hdrPVE}
		o = f.parse(rec)
	}
	if o == Parsed {
		o = f.check()
	}
	if o != Parsed {
		// A record without SRC is not an IP packet's (ARP, a bridge's
		// other traffic): not ours rather than broken. Searching for it
		// only here keeps a second pass off the common path.
		if f.seen&seenSrc == 0 && bytes.Index(rec, []byte(keySRC)) < 0 && !bytes.HasPrefix(rec, []byte(keySRC[1:])) {
			return Skipped
		}
		return o
	}

	var t time.Time
	if st.kind == stampNone {
		var ok bool
		if t, ok = p.undatedTime(); !ok {
			return BadTime
		}
		p.nUndated++
		p.span.undated++
	} else {
		t = p.instant(&st)
	}
	*ev = Event{
		Time:       t,
		Src:        f.src,
		Dst:        f.dst,
		Prefix:     p.prefix(msg[:in]),
		InIface:    p.intern(f.iface, &p.lastIface),
		SrcPort:    f.spt,
		DstPort:    f.dpt,
		Length:     f.length,
		Proto:      f.proto,
		Flags:      f.flags,
		TTL:        f.ttl,
		ICMPType:   f.icmpType,
		ICMPCode:   f.icmpCode,
		NoL4Header: f.noL4,
	}
	return Parsed
}

// undatedTime is the time of a record without a timestamp.
func (p *LineParser) undatedTime() (time.Time, bool) {
	if p.clock != nil {
		return p.clock(), true
	}
	if !p.span.lastSet {
		p.span.lastUsed = true
	}
	switch {
	case p.state.haveLast:
		return p.instant(&p.state.last), true
	case !p.undated.IsZero():
		return p.undated, true
	}
	return time.Time{}, false
}

// looksTimed reports whether b, the text before a record, holds something
// shaped like a time of day ("15:58"): a header that failed to parse, as
// opposed to a line that never had one.
func looksTimed(b []byte) bool {
	for i := 0; ; {
		c := bytes.IndexByte(b[i:], ':')
		if c < 0 {
			return false
		}
		c += i
		if c >= 2 && c+2 < len(b) && isDigit(b[c-2]) && isDigit(b[c-1]) && isDigit(b[c+1]) && isDigit(b[c+2]) {
			return true
		}
		i = c + 1
	}
}

// findIN returns where the firewall fields start: the first "IN=" whose
// interface name is followed by " OUT=", as nf_log always prints the pair.
// Requiring the pair, rather than a space before "IN=", also accepts a rule
// prefix written without a trailing space ("SENTRYIN=eth0 OUT= ...").
func findIN(b []byte) int {
	off := 0
	for {
		i := bytes.Index(b[off:], []byte(keyIN))
		if i < 0 {
			return -1
		}
		i += off
		if outFollows(b[i+len(keyIN):]) {
			return i
		}
		off = i + len(keyIN)
	}
}

// outFollows reports whether b, after "IN=", holds an interface name and
// " OUT=". Interface names are short: a loop finds the space sooner than
// IndexByte gets going.
func outFollows(b []byte) bool {
	sp := 0
	for sp < len(b) && b[sp] != ' ' {
		sp++
	}
	return bytes.HasPrefix(b[sp:], []byte(keyOUT))
}

// findIN is findIN for a message that may start with the last event's
// prefix. That prefix holds no "IN=" (and none can straddle its end, which
// "IN=" follows), so the first "IN=" of the message is right after it.
func (p *LineParser) findIN(msg []byte) int {
	n := len(p.prefixBytes)
	p.samePrefix = p.prefixStr != "" && len(msg) >= n+len(keyIN) && string(msg[:n]) == string(p.prefixBytes) &&
		string(msg[n:n+len(keyIN)]) == keyIN && outFollows(msg[n+len(keyIN):])
	if p.samePrefix {
		return n
	}
	return findIN(msg)
}

// prefix returns the event's Prefix for the text before its record.
func (p *LineParser) prefix(b []byte) string {
	if p.samePrefix {
		return p.prefixStr
	}
	s := p.intern(trimPrefix(b), &p.lastPrefix)
	p.prefixStr = ""
	if s != "" && len(b) <= maxSame && bytes.Index(b, []byte(keyIN)) < 0 {
		p.prefixBytes = append(p.prefixBytes[:0], b...)
		p.prefixStr = s
	}
	return s
}

// pveRecord returns where the fields of a pvefw-logger message start: at
// its first word holding '='. pvefw-logger prints IN= and OUT= only for the
// interfaces a packet has ("policy DROP: IN=vmbr0 PHYSIN=eno1 MAC=..."), so
// findIN's pair is not there to look for; its prefixes hold no '='.
func pveRecord(msg []byte) int {
	eq := bytes.IndexByte(msg, '=')
	if eq < 0 {
		return -1
	}
	return bytes.LastIndexByte(msg[:eq], ' ') + 1
}

// plausibleRecord reports whether every word of rec has a shape nf_log (or
// ulogd, which copies it) prints: KEY=value with an upper-case key, an
// upper-case word (DF, SYN, INCOMPLETE), FRAG:n and ID:x, an option dump
// "(0204...)", the brackets of a quoted packet, "[8 bytes]".
func plausibleRecord(rec []byte) bool {
	for len(rec) > 0 {
		sp := bytes.IndexByte(rec, ' ')
		w := rec
		if sp >= 0 {
			w, rec = rec[:sp], rec[sp+1:]
		} else {
			rec = nil
		}
		for len(w) > 0 && w[0] == '[' {
			w = w[1:]
		}
		for len(w) > 0 && w[len(w)-1] == ']' {
			w = w[:len(w)-1]
		}
		if len(w) == 0 || allDigits(w) || string(w) == "bytes" || w[0] == '(' && w[len(w)-1] == ')' {
			continue
		}
		k := 0
		for k < len(w) && (w[k] >= 'A' && w[k] <= 'Z' || w[k] == '_' || k > 0 && isDigit(w[k])) {
			k++
		}
		switch {
		case k == 0:
			return false
		case k == len(w), w[k] == '=':
		case w[k] == ':' && (string(w[:k]) == "FRAG" || string(w[:k]) == "ID"):
		default:
			return false
		}
	}
	return true
}

// trimPrefix drops what nf_log, firewalld and UniFi OS append to a rule's
// prefix: the separating spaces, firewalld's colon
// ("filter_IN_public_REJECT: ") and UniFi's rule description
// (`[LAN_LOCAL-RET-2147483647] DESCR="no rule description"`).
func trimPrefix(b []byte) []byte {
	b = bytes.TrimRight(b, " ")
	if n := len(b); n > 0 && b[n-1] == '"' {
		b = trimQuotedField(b)
	}
	if n := len(b); n > 0 && b[n-1] == ':' {
		b = bytes.TrimRight(b[:n-1], " ")
	}
	return b
}

// trimQuotedField drops a trailing ` KEY="..."` from b, which ends in '"'.
func trimQuotedField(b []byte) []byte {
	open := bytes.LastIndexByte(b[:len(b)-1], '"')
	if open < 2 || b[open-1] != '=' {
		return b
	}
	k := open - 1
	for k > 0 && (b[k-1] >= 'A' && b[k-1] <= 'Z' || b[k-1] == '_') {
		k--
	}
	if k == open-1 || (k > 0 && b[k-1] != ' ') {
		return b
	}
	return bytes.TrimRight(b[:k], " ")
}

// intern returns b as a string shared by every event that carries it, so
// that steady-state parsing does not allocate.
func (p *LineParser) intern(b []byte, last *string) string {
	if len(b) == 0 {
		return ""
	}
	if string(b) == *last {
		return *last
	}
	s, ok := p.strs[string(b)]
	if !ok {
		s = string(b)
		if len(p.strs) < maxInterned {
			p.strs[s] = s
		}
	}
	*last = s
	return s
}

// instant turns a header's time into a time.Time.
func (p *LineParser) instant(st *stamp) time.Time {
	switch st.kind {
	case stampBoot:
		return time.Unix(p.bootSec+st.sec, p.bootNsec+st.nsec)
	case stampUnix:
		return time.Unix(st.sec, st.nsec)
	case stampOffset:
		days := daysFromCivil(st.year, st.month, st.day)
		sec := days*86400 + int64(st.hour*3600+st.min*60-st.offset) + st.sec
		return time.Unix(sec, st.nsec)
	}
	key := uint64(st.year)<<32 | uint64(st.month)<<24 | uint64(st.day)<<16 | uint64(st.hour)<<8 | uint64(st.min)
	if !p.haveMinute || key != p.minuteKey {
		p.minuteUnix = time.Date(st.year, time.Month(st.month), st.day, st.hour, st.min, 0, 0, p.loc).Unix()
		p.minuteKey, p.haveMinute = key, true
	}
	return time.Unix(p.minuteUnix+st.sec, st.nsec)
}

// daysFromCivil returns the days from 1970-01-01 to y-m-d (H. Hinnant's
// algorithm), so that timestamps with an explicit offset need no time.Date.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
