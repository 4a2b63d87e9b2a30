package parsers

import (
	"bytes"
	"unicode/utf8"
)

// journalJSON reads one object of journalctl -o json or -o json-seq (one
// per line, the latter after an RS byte Parse has dropped): the message in
// MESSAGE, the time in __REALTIME_TIMESTAMP (microseconds since the epoch)
// and, when present, _TRANSPORT, which says whether the kernel wrote it. A
// small scanner reads the three fields and steps over the others, so no
// line allocates; MESSAGE is decoded into the parser's buffer, from a
// string with JSON escapes or from the array of bytes journalctl writes for
// a message that is not valid UTF-8. A line that is not such an object is
// Skipped.
func (p *LineParser) journalJSON(line []byte, st *stamp) ([]byte, headerResult) {
	const (
		fromUnknown = iota
		fromKernel
		fromOther
	)
	haveMsg, from := false, fromUnknown
	i := skipSpace(line, 1)
	for i < len(line) && line[i] != '}' {
		if line[i] != '"' {
			return nil, hdrOther
		}
		kend := jsonStringEnd(line, i)
		if kend < 0 {
			return nil, hdrOther
		}
		key := line[i+1 : kend]
		i = skipSpace(line, kend+1)
		if i >= len(line) || line[i] != ':' {
			return nil, hdrOther
		}
		i = skipSpace(line, i+1)
		var end int
		switch string(key) {
		case "MESSAGE":
			end = p.jsonMessage(line, i)
			haveMsg = end >= 0
		case "__REALTIME_TIMESTAMP":
			end = jsonValueEnd(line, i)
			if end >= 0 {
				usec, ok := jsonUint(line[i:end])
				if !ok {
					return nil, hdrOther
				}
				*st = stamp{kind: stampUnix, sec: int64(usec / 1e6), nsec: int64(usec%1e6) * 1e3}
			}
		case "_TRANSPORT":
			end = jsonValueEnd(line, i)
			if end >= 0 {
				from = fromOther
				if string(line[i:end]) == `"kernel"` {
					from = fromKernel
				}
			}
		default:
			end = jsonValueEnd(line, i)
		}
		if end < 0 {
			return nil, hdrOther
		}
		i = skipSpace(line, end)
		if i < len(line) && line[i] == ',' {
			i = skipSpace(line, i+1)
		}
	}
	if i >= len(line) || !haveMsg {
		return nil, hdrOther
	}
	if from == fromOther {
		if bytes.IndexByte(p.jbuf, '=') < 0 {
			return nil, hdrOther
		}
		return p.jbuf, hdrProgram
	}
	return p.jbuf, hdrKernel
}

// jsonMessage decodes the MESSAGE value at b[i:] into p.jbuf and returns
// the index after it, or -1 for a value that is not a string or an array of
// bytes (journalctl writes null for a field too large to show).
func (p *LineParser) jsonMessage(b []byte, i int) int {
	p.jbuf = p.jbuf[:0]
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		for i++; i < len(b); {
			c := b[i]
			switch {
			case c == '"':
				return i + 1
			case c < 0x20:
				return -1
			case c != '\\':
				// Copy the run up to the next quote or escape at once.
				j := i + 1
				for j < len(b) && b[j] != '"' && b[j] != '\\' && b[j] >= 0x20 {
					j++
				}
				p.jbuf = append(p.jbuf, b[i:j]...)
				i = j
			default:
				n, ok := p.jsonEscape(b, i)
				if !ok {
					return -1
				}
				i += n
			}
		}
		return -1
	case '[':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for i < len(b) {
			v, n := 0, 0
			for i < len(b) && isDigit(b[i]) && n < 4 {
				v = v*10 + int(b[i]-'0')
				i++
				n++
			}
			if n == 0 || v > 255 {
				return -1
			}
			p.jbuf = append(p.jbuf, byte(v))
			i = skipSpace(b, i)
			if i >= len(b) {
				return -1
			}
			if b[i] == ']' {
				return i + 1
			}
			if b[i] != ',' {
				return -1
			}
			i = skipSpace(b, i+1)
		}
	}
	return -1
}

// jsonEscape appends the character the escape at b[i:] ('\\' first) stands
// for and returns the escape's length.
func (p *LineParser) jsonEscape(b []byte, i int) (int, bool) {
	if i+1 >= len(b) {
		return 0, false
	}
	var c byte
	switch b[i+1] {
	case '"', '\\', '/':
		c = b[i+1]
	case 'b':
		c = '\b'
	case 'f':
		c = '\f'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 't':
		c = '\t'
	case 'u':
		r, ok := hex4(b, i+2)
		if !ok {
			return 0, false
		}
		n := 6
		if r >= 0xd800 && r < 0xdc00 && i+12 <= len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
			if lo, ok := hex4(b, i+8); ok && lo >= 0xdc00 && lo < 0xe000 {
				r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
				n = 12
			}
		}
		p.jbuf = utf8.AppendRune(p.jbuf, r)
		return n, true
	default:
		return 0, false
	}
	p.jbuf = append(p.jbuf, c)
	return 2, true
}

// hex4 reads the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		d := unhex(c)
		if d > 15 {
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// jsonStringEnd returns the index of the quote closing the string that
// starts at b[i], or -1.
func jsonStringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// jsonValueEnd returns the index after the value at b[i:]: a string, an
// array or object (nesting counted, strings inside stepped over), or a bare
// word (a number, null, true, false).
func jsonValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		if e := jsonStringEnd(b, i); e >= 0 {
			return e + 1
		}
		return -1
	case '[', '{':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				if i = jsonStringEnd(b, i); i < 0 {
					return -1
				}
			case '[', '{':
				depth++
			case ']', '}':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// jsonUint reads a decimal number, bare or quoted as journalctl quotes
// __REALTIME_TIMESTAMP.
func jsonUint(v []byte) (uint64, bool) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}
