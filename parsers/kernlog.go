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
	// Location for classic syslog / short-precise timestamps that carry no
	// zone (default time.Local).
	Location *time.Location
}

// maxInterned caps the parser's string table: prefixes and interface names
// come from a handful of rules and links, but anyone who can write to the log
// (logger -t kernel) can invent more, and memory must stay bounded.
const maxInterned = 256

// LineParser reads kernel firewall records from text: classic syslog
// (kern.log, /var/log/messages), RFC 3339 syslog, journalctl -k in the
// short-iso, short-iso-precise and short-precise formats, dmesg output
// (bare or -T) and /dev/kmsg records. The format is recognised per line, so
// one parser copes with a file whose format changes midway.
//
// Create one with NewLineParser. A LineParser holds state across lines (the inferred year of classic
// timestamps, interned strings, a time cache), so use one per stream and do
// not share it between goroutines.
type LineParser struct {
	loc      *time.Location
	refYear  int
	refMonth int
	bootSec  int64
	bootNsec int64

	// Classic timestamps have no year: it is inferred from Reference for the
	// first one, then carried from line to line and bumped on Dec -> Jan.
	haveYear  bool
	year      int
	lastMonth int
	lastDay   int

	// Turning a zone-less civil time into an instant needs the zone rules
	// (time.Date); consecutive lines mostly share their minute, so the start
	// of the last minute is kept.
	haveMinute bool
	minuteKey  uint64
	minuteUnix int64

	strs       map[string]string
	lastPrefix string
	lastIface  string
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
		strs:     make(map[string]string),
	}
	if !opts.Boot.IsZero() {
		p.bootSec = opts.Boot.Unix()
		p.bootNsec = int64(opts.Boot.Nanosecond())
	}
	return p
}

// stampKind says how a header's time fields become an instant.
type stampKind uint8

const (
	// stampCivil: wall-clock fields in the parser's Location.
	stampCivil stampKind = iota
	// stampOffset: wall-clock fields with an explicit UTC offset.
	stampOffset
	// stampBoot: time since boot.
	stampBoot
)

// stamp is a header's time, kept as fields so that the costly conversion
// happens only for lines that turn out to be firewall records.
type stamp struct {
	kind                        stampKind
	year, month, day, hour, min int
	sec                         int64 // seconds of the minute, or since boot
	nsec                        int64
	offset                      int // seconds east of UTC, for stampOffset
}

// headerResult is what the line's header says about the rest.
type headerResult uint8

const (
	// hdrKernel: a valid timestamp and a kernel message.
	hdrKernel headerResult = iota
	// hdrOther: a valid header of some other program's message.
	hdrOther
	// hdrBad: no header that could be read.
	hdrBad
)

// The markers of a kernel firewall record. They are constants, converted
// where used: a non-escaping []byte of a constant does not allocate.
const (
	keyIN     = "IN="
	keyOUT    = " OUT="
	keySRC    = " SRC="
	tagKernel = "kernel:"
)

// Parse fills *ev from one line (without or with trailing "\n" / "\r\n").
// It keeps no reference to line. *ev is written only when the outcome is
// Parsed; a line that is not a kernel firewall record is Skipped, and a
// kernel firewall record that cannot be trusted is reported with the reason.
func (p *LineParser) Parse(line []byte, ev *Event) Outcome {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) == 0 {
		return Skipped
	}

	var st stamp
	msg, res := p.header(line, &st)
	switch res {
	case hdrOther:
		return Skipped
	case hdrBad:
		// The header is unreadable, so the whole line is searched: a
		// firewall record without a usable time is reported, anything
		// else is just not ours.
		msg = line
	}
	in := findIN(msg)
	if in < 0 {
		return Skipped
	}
	if res == hdrBad {
		if bytes.Index(msg[in:], []byte(keySRC)) < 0 {
			return Skipped
		}
		return BadTime
	}

	var f fields
	o := f.parse(msg[in:])
	if o == Parsed {
		o = f.check()
	}
	if o != Parsed {
		// A record without SRC is not an IP packet's (ARP, a bridge's
		// other traffic): not ours rather than broken. Searching for it
		// only here keeps a second pass off the common path.
		if f.seen&seenSrc == 0 && bytes.Index(msg[in:], []byte(keySRC)) < 0 {
			return Skipped
		}
		return o
	}

	*ev = Event{
		Time:     p.instant(&st),
		Src:      f.src,
		Dst:      f.dst,
		Prefix:   p.intern(trimPrefix(msg[:in]), &p.lastPrefix),
		InIface:  p.intern(f.iface, &p.lastIface),
		SrcPort:  f.spt,
		DstPort:  f.dpt,
		Length:   f.length,
		Proto:    f.proto,
		Flags:    f.flags,
		TTL:      f.ttl,
		ICMPType: f.icmpType,
		ICMPCode: f.icmpCode,
	}
	return Parsed
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
		rest := b[i+len(keyIN):]
		if sp := bytes.IndexByte(rest, ' '); sp >= 0 && bytes.HasPrefix(rest[sp:], []byte(keyOUT)) {
			return i
		}
		off = i + len(keyIN)
	}
}

// trimPrefix drops what nf_log and firewalld append to a rule's prefix: the
// separating spaces and firewalld's colon ("filter_IN_public_REJECT: ").
func trimPrefix(b []byte) []byte {
	b = bytes.TrimRight(b, " ")
	if n := len(b); n > 0 && b[n-1] == ':' {
		b = bytes.TrimRight(b[:n-1], " ")
	}
	return b
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

// header reads the timestamp and, where the format has one, the program
// tag, and returns the kernel message that follows.
func (p *LineParser) header(line []byte, st *stamp) ([]byte, headerResult) {
	c := line[0]
	switch {
	case c >= 'A' && c <= 'Z':
		return p.syslogHeader(line, st)
	case c >= '0' && c <= '9':
		if len(line) > 4 && line[4] == '-' {
			return p.isoHeader(line, st)
		}
		return p.kmsgHeader(line, st)
	case c == '[':
		return p.dmesgHeader(line, st)
	}
	return nil, hdrBad
}

// syslogHeader reads "Nov 24 15:58:19[.123456] host kernel: ", the classic
// syslog and journalctl short-precise formats.
func (p *LineParser) syslogHeader(line []byte, st *stamp) ([]byte, headerResult) {
	i, ok := civilMonthDayTime(line, 0, st)
	if !ok {
		return nil, hdrBad
	}
	// Every dated line moves the year, not only firewall records: the
	// firewall may stay quiet across a turn of the year that the rest of
	// the log shows.
	st.kind = stampCivil
	st.year = p.inferYear(st.month, st.day)
	return kernelTag(line, i)
}

// isoHeader reads "2026-11-24T15:58:19[.123456](Z|+00:00|+0000) host
// kernel: ", as rsyslog and syslog-ng write RFC 3339 and journalctl writes
// short-iso and short-iso-precise.
func (p *LineParser) isoHeader(line []byte, st *stamp) ([]byte, headerResult) {
	if len(line) < 20 || line[7] != '-' || line[10] != 'T' || line[13] != ':' || line[16] != ':' {
		return nil, hdrBad
	}
	y, ok1 := num(line[0:4])
	mo, ok2 := num(line[5:7])
	d, ok3 := num(line[8:10])
	h, ok4 := num(line[11:13])
	mi, ok5 := num(line[14:16])
	s, ok6 := num(line[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || !validDate(y, mo, d) || h > 23 || mi > 59 || s > 59 {
		return nil, hdrBad
	}
	i, nsec, ok := fraction(line, 19)
	if !ok || i >= len(line) {
		return nil, hdrBad
	}
	var off int
	switch line[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		sign := 1
		if line[i] == '-' {
			sign = -1
		}
		i++
		if i+2 > len(line) {
			return nil, hdrBad
		}
		oh, okh := num(line[i : i+2])
		i += 2
		if i < len(line) && line[i] == ':' {
			i++
		}
		if i+2 > len(line) {
			return nil, hdrBad
		}
		om, okm := num(line[i : i+2])
		i += 2
		if !okh || !okm || oh > 23 || om > 59 {
			return nil, hdrBad
		}
		off = sign * (oh*3600 + om*60)
	default:
		return nil, hdrBad
	}
	*st = stamp{kind: stampOffset, year: y, month: mo, day: d, hour: h, min: mi, sec: int64(s), nsec: nsec, offset: off}
	return kernelTag(line, i)
}

// kernelTag checks that " host kernel: " (or " kernel: " without a host)
// follows the timestamp ending at i, and returns the message after it with
// any dmesg uptime stripped, "[12345.678901] ".
func kernelTag(line []byte, i int) ([]byte, headerResult) {
	if i >= len(line) || line[i] != ' ' {
		return nil, hdrBad
	}
	i++
	rest := line[i:]
	if !bytes.HasPrefix(rest, []byte(tagKernel)) {
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 {
			return nil, hdrOther
		}
		rest = rest[sp+1:]
		if !bytes.HasPrefix(rest, []byte(tagKernel)) {
			return nil, hdrOther
		}
	}
	rest = rest[len(tagKernel):]
	if len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] == '[' {
		if _, _, j, ok := uptime(rest); ok {
			rest = rest[j:]
			if len(rest) > 0 && rest[0] == ' ' {
				rest = rest[1:]
			}
		}
	}
	return rest, hdrKernel
}

// dmesgHeader reads dmesg's "[12345.678901] " (time since boot) or dmesg
// -T's "[Tue Nov 24 15:58:19 2026] ".
func (p *LineParser) dmesgHeader(line []byte, st *stamp) ([]byte, headerResult) {
	var i int
	if sec, nsec, j, ok := uptime(line); ok {
		*st = stamp{kind: stampBoot, sec: sec, nsec: nsec}
		i = j
	} else {
		// "[Tue " then the classic month, day and time, then " 2026]".
		if len(line) < 5 || line[4] != ' ' {
			return nil, hdrBad
		}
		j, ok := civilMonthDayTime(line, 5, st)
		if !ok || st.nsec != 0 || j+6 > len(line) || line[j] != ' ' || line[j+5] != ']' {
			return nil, hdrBad
		}
		y, ok := num(line[j+1 : j+5])
		if !ok || !validDate(y, st.month, st.day) {
			return nil, hdrBad
		}
		st.kind = stampCivil
		st.year = y
		i = j + 6
	}
	if i < len(line) {
		if line[i] != ' ' {
			return nil, hdrBad
		}
		i++
	}
	return line[i:], hdrKernel
}

// kmsgHeader reads a /dev/kmsg record header, "4,14679,15154445737,-;":
// priority, sequence, microseconds since boot, flags and perhaps more
// fields, then ';'. Records of a facility other than kern were written by
// user space and are not firewall evidence.
func (p *LineParser) kmsgHeader(line []byte, st *stamp) ([]byte, headerResult) {
	i := 0
	pri, i, ok := digitsUntil(line, i, ',')
	if !ok || pri > 191 {
		return nil, hdrBad
	}
	if _, i, ok = digitsUntil(line, i, ','); !ok {
		return nil, hdrBad
	}
	usec, i, ok := digitsUntil(line, i, ',')
	if !ok {
		return nil, hdrBad
	}
	// Flags and optional fields ("caller=T123") are short; a ';' further
	// away is not a kmsg header.
	end := min(len(line), i+64)
	semi := bytes.IndexByte(line[i:end], ';')
	if semi < 0 {
		return nil, hdrBad
	}
	if pri>>3 != 0 {
		return nil, hdrOther
	}
	*st = stamp{kind: stampBoot, sec: int64(usec / 1e6), nsec: int64(usec%1e6) * 1e3}
	return line[i+semi+1:], hdrKernel
}

// digitsUntil reads a decimal number at line[i:] ended by sep, returning it
// and the index after sep.
func digitsUntil(line []byte, i int, sep byte) (uint64, int, bool) {
	var v uint64
	start := i
	for ; i < len(line) && line[i] != sep; i++ {
		c := line[i] - '0'
		if c > 9 || i-start >= 19 {
			return 0, 0, false
		}
		v = v*10 + uint64(c)
	}
	if i == start || i >= len(line) {
		return 0, 0, false
	}
	return v, i + 1, true
}

// uptime reads "[%5lu.%06lu]" at the start of b, the kernel's time since
// boot, returning the seconds, nanoseconds and index after ']'.
func uptime(b []byte) (sec, nsec int64, end int, ok bool) {
	i := 1
	for i < len(b) && b[i] == ' ' {
		i++
	}
	start := i
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i-start >= 12 {
			return 0, 0, 0, false
		}
		sec = sec*10 + int64(b[i]-'0')
	}
	if i == start || i >= len(b) || b[i] != '.' {
		return 0, 0, 0, false
	}
	i, nsec, ok = fraction(b, i)
	if !ok || i >= len(b) || b[i] != ']' {
		return 0, 0, 0, false
	}
	return sec, nsec, i + 1, true
}

// fraction reads an optional ".digits" at b[i:] as nanoseconds, returning
// the index after it. Digits beyond nanoseconds are read and dropped.
func fraction(b []byte, i int) (int, int64, bool) {
	if i >= len(b) || b[i] != '.' {
		return i, 0, true
	}
	i++
	start := i
	var ns int64
	scale := int64(1e8)
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		ns += int64(b[i]-'0') * scale
		scale /= 10
	}
	if i == start {
		return 0, 0, false
	}
	return i, ns, true
}

// civilMonthDayTime reads "Nov 24 15:58:19[.123456]" at line[i:]; the day
// may be space-padded ("Nov  4") or not ("Nov 4"). It returns the index
// after the time.
func civilMonthDayTime(line []byte, i int, st *stamp) (int, bool) {
	if i+15 > len(line) || line[i+3] != ' ' {
		return 0, false
	}
	mo := monthOf(line[i], line[i+1], line[i+2])
	if mo == 0 {
		return 0, false
	}
	i += 4
	if line[i] == ' ' {
		i++
	}
	d := 0
	start := i
	for ; i < len(line) && i-start < 2 && line[i] >= '0' && line[i] <= '9'; i++ {
		d = d*10 + int(line[i]-'0')
	}
	if i == start || i+9 > len(line) || line[i] != ' ' || line[i+3] != ':' || line[i+6] != ':' {
		return 0, false
	}
	h, ok1 := num(line[i+1 : i+3])
	mi, ok2 := num(line[i+4 : i+6])
	s, ok3 := num(line[i+7 : i+9])
	// Without a year, Feb 29 is checked against a leap year.
	if !(ok1 && ok2 && ok3) || !validDate(2000, mo, d) || h > 23 || mi > 59 || s > 59 {
		return 0, false
	}
	i, nsec, ok := fraction(line, i+9)
	if !ok {
		return 0, false
	}
	st.month, st.day, st.hour, st.min, st.sec, st.nsec = mo, d, h, mi, int64(s), nsec
	return i, true
}

// monthOf returns 1-12 for an English month abbreviation, 0 otherwise.
func monthOf(a, b, c byte) int {
	switch uint32(a)<<16 | uint32(b)<<8 | uint32(c) {
	case 'J'<<16 | 'a'<<8 | 'n':
		return 1
	case 'F'<<16 | 'e'<<8 | 'b':
		return 2
	case 'M'<<16 | 'a'<<8 | 'r':
		return 3
	case 'A'<<16 | 'p'<<8 | 'r':
		return 4
	case 'M'<<16 | 'a'<<8 | 'y':
		return 5
	case 'J'<<16 | 'u'<<8 | 'n':
		return 6
	case 'J'<<16 | 'u'<<8 | 'l':
		return 7
	case 'A'<<16 | 'u'<<8 | 'g':
		return 8
	case 'S'<<16 | 'e'<<8 | 'p':
		return 9
	case 'O'<<16 | 'c'<<8 | 't':
		return 10
	case 'N'<<16 | 'o'<<8 | 'v':
		return 11
	case 'D'<<16 | 'e'<<8 | 'c':
		return 12
	}
	return 0
}

// num reads a short, all-digit number.
func num(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// validDate reports whether y-m-d exists in the proleptic Gregorian calendar.
func validDate(y, m, d int) bool {
	if m < 1 || m > 12 || d < 1 {
		return false
	}
	n := [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[m]
	if m == 2 && y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		n = 29
	}
	return d <= n
}

// inferYear gives a classic timestamp of month mon, day day its year. The
// first line's year is Reference's, or the one before when the month lies
// after Reference's (a January mtime on a file that starts in December).
// After that, a month falling back by more than half a year is a turn of the
// year (Dec -> Jan). The one step back allowed is a Dec 31 line logged late,
// after a Jan 1 one: syslog daemons write a few lines out of order, and
// reading it as next December would shift every later line by a year. A
// general rule for big steps forward would misdate a quiet log's lines.
func (p *LineParser) inferYear(mon, day int) int {
	switch {
	case !p.haveYear:
		p.haveYear = true
		p.year = p.refYear
		if mon > p.refMonth {
			p.year--
		}
	case mon < p.lastMonth-6:
		p.year++
	case mon == 12 && day == 31 && p.lastMonth == 1 && p.lastDay == 1:
		p.year--
	}
	p.lastMonth, p.lastDay = mon, day
	return p.year
}

// instant turns a header's time into a time.Time.
func (p *LineParser) instant(st *stamp) time.Time {
	switch st.kind {
	case stampBoot:
		return time.Unix(p.bootSec+st.sec, p.bootNsec+st.nsec)
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
