package parsers

import (
	"bytes"
)

// stampKind says how a header's time fields become an instant.
type stampKind uint8

const (
	// stampNone: the line carried no time at all.
	stampNone stampKind = iota
	// stampCivil: wall-clock fields in the parser's Location.
	stampCivil
	// stampOffset: wall-clock fields with an explicit UTC offset.
	stampOffset
	// stampBoot: time since boot.
	stampBoot
	// stampUnix: seconds and nanoseconds since the Unix epoch.
	stampUnix
)

// stamp is a header's time, kept as fields so that the costly conversion
// happens only for lines that turn out to be firewall records.
type stamp struct {
	kind                        stampKind
	year, month, day, hour, min int
	sec                         int64 // seconds of the minute, since boot, or since the epoch
	nsec                        int64
	offset                      int // seconds east of UTC, for stampOffset
}

// headerResult is what the line's header says about the rest.
type headerResult uint8

const (
	// hdrKernel: a kernel message.
	hdrKernel headerResult = iota
	// hdrProgram: another program's message, or one without a program tag
	// (a relay, ulogd): read only if it is a well-formed record.
	hdrProgram
	// hdrPVE: a message of Proxmox VE's pvefw-logger, which prints the
	// fields its own way.
	hdrPVE
	// hdrOther: a valid header of a message that holds no record.
	hdrOther
	// hdrBad: no header that could be read.
	hdrBad
)

// tagKernel is the kernel's program tag in syslog. A constant, converted
// where used: a non-escaping []byte of a constant does not allocate.
const tagKernel = "kernel:"

// header reads the timestamp and, where the format has one, the program
// tag, and returns the message that follows. A journal JSON object or a
// line that starts with a syslog <PRI> is told apart by its first byte.
func (p *LineParser) header(line []byte, st *stamp) ([]byte, headerResult) {
	if n := len(p.same); n > 0 && len(line) >= n && string(line[:n]) == string(p.same) {
		*st = p.sameStamp
		p.sameHit = true
		return kernelMessage(line[n:]), hdrKernel
	}
	p.same, p.sameHit = p.same[:0], false
	switch c := line[0]; {
	case c >= 'A' && c <= 'Z':
		// The common case first.
		p.tagEnd = 0
		msg, res := p.syslogHeader(line, st)
		if p.tagEnd > 0 && p.tagEnd <= maxSame {
			p.same = append(p.same, line[:p.tagEnd]...)
			p.sameStamp = *st
		}
		return msg, res
	case c == '<':
		return p.priHeader(line, st)
	case c == '{':
		return p.journalJSON(line, st)
	}
	return p.plainHeader(line, st)
}

// plainHeader reads the headers that carry no <PRI>, or follow one.
func (p *LineParser) plainHeader(line []byte, st *stamp) ([]byte, headerResult) {
	c := line[0]
	switch {
	case c >= 'A' && c <= 'Z':
		return p.syslogHeader(line, st)
	case isDigit(c):
		if len(line) > 4 && line[4] == '-' {
			return p.isoHeader(line, st)
		}
		// The byte after the leading number tells a /dev/kmsg record
		// ("4,1467,...") from pvefw-logger's ("0 6 PVEFW-HOST-IN ...") and
		// from a numeric month ("11月 15 14:30:53").
		j := 1
		for j < len(line) && j < 21 && isDigit(line[j]) {
			j++
		}
		if j < len(line) {
			switch line[j] {
			case ',':
				return p.kmsgHeader(line, st)
			case ' ':
				return p.pveHeader(line, st)
			}
		}
		return p.syslogHeader(line, st)
	case c == '[':
		return p.dmesgHeader(line, st)
	case c == ' ' || c >= 'a' && c <= 'z' || c >= 0x80:
		// A localized month: "mär", "janv.", "дек", " 1月".
		return p.syslogHeader(line, st)
	}
	return nil, hdrBad
}

// priHeader reads a syslog priority, "<4>", then RFC 5424's "1 " and its
// header, or any header plainHeader reads (RFC 3164 relays, dmesg -r).
func (p *LineParser) priHeader(line []byte, st *stamp) ([]byte, headerResult) {
	i, pri := 1, 0
	for i < len(line) && i < 5 && isDigit(line[i]) {
		pri = pri*10 + int(line[i]-'0')
		i++
	}
	if i == 1 || i+1 >= len(line) || line[i] != '>' || pri > 191 {
		return nil, hdrBad
	}
	rest := line[i+1:]
	if len(rest) > 2 && rest[0] == '1' && rest[1] == ' ' {
		return p.rfc5424(rest[2:], st)
	}
	if rest[0] == '<' || rest[0] == '{' {
		return nil, hdrBad
	}
	return p.plainHeader(rest, st)
}

// rfc5424 reads what follows "<PRI>1 ": TIMESTAMP HOSTNAME APP-NAME PROCID
// MSGID STRUCTURED-DATA [MSG]. A nil timestamp ("-") leaves the line
// undated.
func (p *LineParser) rfc5424(b []byte, st *stamp) ([]byte, headerResult) {
	i := 1
	if len(b) == 0 || b[0] != '-' {
		var ok bool
		if i, ok = isoStamp(b, st); !ok {
			return nil, hdrBad
		}
	}
	if i >= len(b) || b[i] != ' ' {
		return nil, hdrBad
	}
	rest := b[i+1:]
	sp := bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return nil, hdrBad
	}
	rest = rest[sp+1:] // hostname
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return nil, hdrBad
	}
	app := rest[:sp]
	msg, ok := rfc5424Tail(rest[sp+1:])
	if !ok {
		return nil, hdrBad
	}
	if string(app) == "kernel" {
		return kernelMessage(msg), hdrKernel
	}
	if bytes.IndexByte(msg, '=') < 0 {
		return nil, hdrOther
	}
	return msg, hdrProgram
}

// rfc5424Tail reads RFC 5424's PROCID MSGID STRUCTURED-DATA and returns the
// MSG after them, without its optional UTF-8 byte order mark.
func rfc5424Tail(b []byte) ([]byte, bool) {
	for range 2 {
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 || sp > 128 {
			return nil, false
		}
		b = b[sp+1:]
	}
	switch {
	case len(b) == 0:
		return nil, false
	case b[0] == '-':
		b = b[1:]
	case b[0] == '[':
		for len(b) > 0 && b[0] == '[' {
			j := sdElementEnd(b)
			if j < 0 {
				return nil, false
			}
			b = b[j:]
		}
	default:
		return nil, false
	}
	if len(b) == 0 {
		return b, true
	}
	if b[0] != ' ' {
		return nil, false
	}
	return bytes.TrimPrefix(b[1:], []byte("\xef\xbb\xbf")), true
}

// sdElementEnd returns the index after the ']' closing the structured-data
// element that starts b, whose quoted values may hold ']' and escapes.
func sdElementEnd(b []byte) int {
	quoted := false
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ']' && !quoted:
			return i + 1
		}
	}
	return -1
}

// syslogHeader reads "Nov 24 15:58:19[.123456] host kernel: ", the classic
// syslog and journalctl short-precise formats, with English or localized
// month names, and OpenWrt logread's "Mon Dec 25 13:31:15 2017 kern.warn
// kernel: ".
func (p *LineParser) syslogHeader(line []byte, st *stamp) ([]byte, headerResult) {
	if len(line) > 8 && line[3] == ' ' && isWeekday(line[0], line[1], line[2]) {
		i, ok := civilMonthDayTime(line, 4, st)
		if !ok || i+5 > len(line) || line[i] != ' ' {
			return nil, hdrBad
		}
		if !st.setYear(line[i+1 : i+5]) {
			return nil, hdrBad
		}
		return tagged(line, i+5)
	}
	i, ok := civilMonthDayTime(line, 0, st)
	if !ok {
		return nil, hdrBad
	}
	// Every dated line moves the year, not only firewall records: the
	// firewall may stay quiet across a turn of the year that the rest of
	// the log shows.
	st.kind = stampCivil
	st.year = p.inferYear(st.month, st.day)
	if end := kernelTagEnd(line, i); end > 0 {
		p.tagEnd = end
		return kernelMessage(line[end:]), hdrKernel
	}
	return untaggedAt(line, i)
}

// isoHeader reads "2026-11-24T15:58:19[.123456](Z|+00:00|+0000) host
// kernel: ", as rsyslog and syslog-ng write RFC 3339 and journalctl writes
// short-iso and short-iso-precise, and the zone-less forms of rsyslog and
// syslog-ng templates ("2026-11-24 15:58:19").
func (p *LineParser) isoHeader(line []byte, st *stamp) ([]byte, headerResult) {
	i, ok := isoStamp(line, st)
	if !ok {
		return nil, hdrBad
	}
	return tagged(line, i)
}

// isoStamp reads an ISO 8601 date and time at the start of b, with a zone
// (Z, +01:00, +0100) or without one, and returns the index after it.
func isoStamp(b []byte, st *stamp) (int, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	mi, ok5 := num(b[14:16])
	s, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || !validDate(y, mo, d) || h > 23 || mi > 59 || s > 59 {
		return 0, false
	}
	i, nsec, ok := fraction(b, 19)
	if !ok || i >= len(b) {
		return 0, false
	}
	*st = stamp{kind: stampOffset, year: y, month: mo, day: d, hour: h, min: mi, sec: int64(s), nsec: nsec}
	switch b[i] {
	case 'Z', 'z':
		return i + 1, true
	case ' ':
		// No zone: local time, or the Location the user names.
		st.kind = stampCivil
		return i, true
	case '+', '-':
		sign := 1
		if b[i] == '-' {
			sign = -1
		}
		i++
		if i+2 > len(b) {
			return 0, false
		}
		oh, okh := num(b[i : i+2])
		i += 2
		if i < len(b) && b[i] == ':' {
			i++
		}
		if i+2 > len(b) {
			return 0, false
		}
		om, okm := num(b[i : i+2])
		i += 2
		if !okh || !okm || oh > 23 || om > 59 {
			return 0, false
		}
		st.offset = sign * (oh*3600 + om*60)
		return i, true
	}
	return 0, false
}

// dmesgHeader reads dmesg's "[12345.678901] " (time since boot) or dmesg
// -T's "[Tue Nov 24 15:58:19 2026] ", and journalctl -o short-monotonic's
// "[12345.678901] host kernel: ".
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
		if !st.setYear(line[j+1 : j+5]) {
			return nil, hdrBad
		}
		i = j + 6
	}
	if i < len(line) {
		if line[i] != ' ' {
			return nil, hdrBad
		}
		i++
	}
	// journalctl -o short-monotonic puts the host and tag after the uptime.
	rest := line[i:]
	if bytes.HasPrefix(rest, []byte(tagKernel)) {
		return kernelMessage(rest[len(tagKernel):]), hdrKernel
	}
	if sp := bytes.IndexByte(rest, ' '); sp > 0 && bytes.HasPrefix(rest[sp+1:], []byte(tagKernel)) {
		return kernelMessage(rest[sp+1+len(tagKernel):]), hdrKernel
	}
	return rest, hdrKernel
}

// kmsgHeader reads a /dev/kmsg record header, "4,14679,15154445737,-;":
// priority, sequence, microseconds since boot, flags and perhaps more
// fields, then ';'. Records of a facility other than kern were written by
// user space and are not firewall evidence.
func (p *LineParser) kmsgHeader(line []byte, st *stamp) ([]byte, headerResult) {
	i := 0
	pri, i, ok := KmsgField(line, i)
	if !ok || pri > 191 {
		return nil, hdrBad
	}
	if _, i, ok = KmsgField(line, i); !ok {
		return nil, hdrBad
	}
	usec, i, ok := KmsgField(line, i)
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

// pveHeader reads the header of Proxmox VE's firewall log
// (/var/log/pve-firewall.log, written by pvefw-logger): "VMID LOGLEVEL
// CHAIN DD/Mon/YYYY:HH:MM:SS +ZZZZ ".
func (p *LineParser) pveHeader(line []byte, st *stamp) ([]byte, headerResult) {
	i := 0
	for i < len(line) && isDigit(line[i]) {
		i++
	}
	if i == 0 || i > 10 || i+3 > len(line) || line[i+1] < '0' || line[i+1] > '7' || line[i+2] != ' ' {
		return nil, hdrBad
	}
	i += 3
	sp := bytes.IndexByte(line[i:min(len(line), i+65)], ' ')
	if sp <= 0 {
		return nil, hdrBad
	}
	i += sp + 1
	if i+26 > len(line) {
		return nil, hdrBad
	}
	b := line[i : i+26]
	if b[2] != '/' || b[6] != '/' || b[11] != ':' || b[14] != ':' || b[17] != ':' || b[20] != ' ' || (b[21] != '+' && b[21] != '-') {
		return nil, hdrBad
	}
	d, ok1 := num(b[0:2])
	mo := monthOf(b[3], b[4], b[5])
	y, ok2 := num(b[7:11])
	h, ok3 := num(b[12:14])
	mi, ok4 := num(b[15:17])
	s, ok5 := num(b[18:20])
	oh, ok6 := num(b[22:24])
	om, ok7 := num(b[24:26])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || !validDate(y, mo, d) || h > 23 || mi > 59 || s > 59 || oh > 23 || om > 59 {
		return nil, hdrBad
	}
	off := oh*3600 + om*60
	if b[21] == '-' {
		off = -off
	}
	*st = stamp{kind: stampOffset, year: y, month: mo, day: d, hour: h, min: mi, sec: int64(s), offset: off}
	i += 26
	if i < len(line) {
		if line[i] != ' ' {
			return nil, hdrBad
		}
		i++
	}
	return line[i:], hdrPVE
}

// setYear completes a civil stamp whose month and day are read with the
// four-digit year b, reporting false when b is not one or the date does
// not exist.
func (st *stamp) setYear(b []byte) bool {
	y, ok := num(b)
	if !ok || !validDate(y, st.month, st.day) {
		return false
	}
	st.kind, st.year = stampCivil, y
	return true
}

// KmsgField reads the decimal field of a /dev/kmsg record's header at
// line[i:] (priority, sequence number, microseconds), which a comma ends,
// returning it and the index after the comma; false if there is no such
// field (empty, not digits, more than 19 digits, or no comma). The kmsg
// source reads the sequence numbers with it, to count lost records.
func KmsgField(line []byte, i int) (uint64, int, bool) {
	var v uint64
	start := i
	for ; i < len(line) && line[i] != ','; i++ {
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
	for ; i < len(b) && isDigit(b[i]); i++ {
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
	for ; i < len(b) && isDigit(b[i]); i++ {
		ns += int64(b[i]-'0') * scale
		scale /= 10
	}
	if i == start {
		return 0, 0, false
	}
	return i, ns, true
}

// civilMonthDayTime reads "Nov 24 15:58:19[.123456]" at line[i:]; the day
// may be space-padded ("Nov  4") or not ("Nov 4"), the month English (read
// first, the common case) or localized (monthWord). It returns the index
// after the time.
func civilMonthDayTime(line []byte, i int, st *stamp) (int, bool) {
	var mo int
	if i+4 <= len(line) && line[i+3] == ' ' {
		mo = monthOf(line[i], line[i+1], line[i+2])
	}
	if mo != 0 {
		i += 4
	} else if mo, i = monthWordAt(line, i); mo == 0 {
		return 0, false
	}
	if i < len(line) && line[i] == ' ' {
		i++
	}
	d := 0
	start := i
	for ; i < len(line) && i-start < 2 && isDigit(line[i]); i++ {
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

// monthWordAt reads a localized month word at b[i:] and the space after
// it, returning the month (0 if there is none) and the index after the
// space.
func monthWordAt(b []byte, i int) (int, int) {
	if i < len(b) && b[i] == ' ' {
		i++ // " 1月", as some locales pad it
	}
	end := i
	for end < len(b) && end-i <= 8 && b[end] != ' ' {
		end++
	}
	if end == i || end >= len(b) || b[end] != ' ' {
		return 0, 0
	}
	m := monthWord(b[i:end])
	if m == 0 {
		return 0, 0
	}
	return m, end + 1
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

// monthWord returns 1-12 for a month abbreviation as strftime's %b writes
// it in the locales journalctl and some syslog daemons follow: English,
// German, French, Spanish, Italian, Portuguese, Dutch, Polish and Russian
// words (case and a final '.' ignored), and the numeric months of Chinese,
// Japanese ("11月") and Korean ("11월"). No word means two months across
// these locales. 0 for anything else.
func monthWord(w []byte) int {
	if isDigit(w[0]) {
		n, j := 0, 0
		for j < len(w) && j < 2 && isDigit(w[j]) {
			n = n*10 + int(w[j]-'0')
			j++
		}
		if n < 1 || n > 12 || (string(w[j:]) != "月" && string(w[j:]) != "월") {
			return 0
		}
		return n
	}
	n := len(w)
	if w[n-1] == '.' {
		n--
	}
	var buf [8]byte
	if n < 3 || n > len(buf) {
		return 0
	}
	for j := range n {
		c := w[j]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[j] = c
	}
	switch string(buf[:n]) {
	case "jan", "janv", "ene", "gen", "sty", "янв":
		return 1
	case "feb", "févr", "fev", "lut", "фев":
		return 2
	case "mar", "mär", "mars", "mrt", "мар":
		return 3
	case "apr", "avr", "avril", "abr", "kwi", "апр":
		return 4
	case "may", "mai", "mag", "mei", "maj", "мая", "май":
		return 5
	case "jun", "juin", "giu", "cze", "июн":
		return 6
	case "jul", "juil", "lug", "lip", "июл":
		return 7
	case "aug", "août", "ago", "sie", "авг":
		return 8
	case "sep", "sept", "set", "wrz", "сен":
		return 9
	case "oct", "okt", "ott", "out", "paź", "окт":
		return 10
	case "nov", "lis", "ноя":
		return 11
	case "dec", "dez", "dic", "déc", "gru", "дек":
		return 12
	}
	return 0
}

// isWeekday reports whether a, b, c spell an English weekday abbreviation.
func isWeekday(a, b, c byte) bool {
	switch uint32(a)<<16 | uint32(b)<<8 | uint32(c) {
	case 'M'<<16 | 'o'<<8 | 'n', 'T'<<16 | 'u'<<8 | 'e', 'W'<<16 | 'e'<<8 | 'd',
		'T'<<16 | 'h'<<8 | 'u', 'F'<<16 | 'r'<<8 | 'i', 'S'<<16 | 'a'<<8 | 't', 'S'<<16 | 'u'<<8 | 'n':
		return true
	}
	return false
}

// num reads a short, all-digit number.
func num(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return len(b) > 0
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

// inferYear gives a classic timestamp of month mon, day day its year (see
// LineState.inferYear), noting the first of a span's.
func (p *LineParser) inferYear(mon, day int) int {
	y := p.state.inferYear(p.refYear, p.refMonth, mon, day)
	if !p.span.yearUsed {
		p.span.yearUsed = true
		p.span.firstMonth, p.span.firstDay, p.span.firstYear = mon, day, y
	}
	return y
}

// inferYear gives a classic timestamp of month mon, day day its year. The
// first line's year is Reference's, or the one before when the month lies
// after Reference's (a January mtime on a file that starts in December).
// After that, a month falling back by more than half a year is a turn of the
// year (Dec -> Jan). The one step back allowed is a Dec 31 line logged late,
// after a Jan 1 one: syslog daemons write a few lines out of order, and
// reading it as next December would shift every later line by a year. A
// general rule for big steps forward would misdate a quiet log's lines.
func (s *LineState) inferYear(refYear, refMonth, mon, day int) int {
	switch {
	case !s.haveYear:
		s.haveYear = true
		s.year = refYear
		if mon > refMonth {
			s.year--
		}
	case mon < s.lastMonth-6:
		s.year++
	case mon == 12 && day == 31 && s.lastMonth == 1 && s.lastDay == 1:
		s.year--
	}
	s.lastMonth, s.lastDay = mon, day
	return s.year
}
