package parsers

import (
	"bytes"
)

// What follows a timestamp: the program tag ("kernel:", another
// program's, or none for relayed firewall records) and the kernel's
// message after it.

// tagged reads what follows a timestamp ending at i. The common case is
// " host kernel: " or " kernel: "; anything else is left to untagged.
func tagged(line []byte, i int) ([]byte, headerResult) {
	if end := kernelTagEnd(line, i); end > 0 {
		return kernelMessage(line[end:]), hdrKernel
	}
	return untaggedAt(line, i)
}

// kernelTagEnd returns the index after " kernel:" or " host kernel:" when
// that follows a timestamp ending at i, else 0.
func kernelTagEnd(line []byte, i int) int {
	if i >= len(line) || line[i] != ' ' {
		return 0
	}
	rest := line[i+1:]
	if bytes.HasPrefix(rest, []byte(tagKernel)) {
		return i + 1 + len(tagKernel)
	}
	if sp := bytes.IndexByte(rest, ' '); sp >= 0 && bytes.HasPrefix(rest[sp+1:], []byte(tagKernel)) {
		return i + 1 + sp + 1 + len(tagKernel)
	}
	return 0
}

// untaggedAt is untagged for a timestamp ending at i.
func untaggedAt(line []byte, i int) ([]byte, headerResult) {
	if i >= len(line) || line[i] != ' ' {
		return nil, hdrBad
	}
	return untagged(line[i+1:])
}

// untagged reads the rest of a syslog line whose second word is not
// "kernel:": busybox's "host kern.warn kernel: ", RFC 5424 written to a file
// ("host kernel - - - "), another program's "host prog[12]: ", or no program
// tag at all, as firewalls relaying their records (UniFi, EdgeOS,
// Shorewall) and ulogd's LOGEMU write them ("host PREFIX IN=..."). Only the
// kernel's own messages come back as hdrKernel.
func untagged(rest []byte) ([]byte, headerResult) {
	// Most lines of other programs hold no '=' at all: skip them cheaply.
	if bytes.IndexByte(rest, '=') < 0 {
		return nil, hdrOther
	}
	off, afterHost := 0, -1
	for range 3 {
		end := bytes.IndexByte(rest[off:], ' ')
		if end < 0 {
			break
		}
		word, next := rest[off:off+end], off+end+1
		if bytes.IndexByte(word, '=') >= 0 {
			break // the record (or a prefix glued to it) starts here
		}
		if string(word) == tagKernel {
			return kernelMessage(rest[next:]), hdrKernel
		}
		if string(word) == "kernel" {
			if msg, ok := rfc5424Tail(rest[next:]); ok {
				return kernelMessage(msg), hdrKernel
			}
		}
		if isTag(word) {
			if bytes.HasPrefix(rest[next:], []byte(keyIN)) {
				// A tag-shaped word right before the record is the rule's
				// prefix, as ulogd writes it without a program tag
				// ("box IN-work: IN=eth0 ...").
				return rest[off:], hdrProgram
			}
			return rest[next:], hdrProgram
		}
		if afterHost < 0 {
			afterHost = next
		}
		off = next
	}
	if afterHost < 0 {
		return rest, hdrProgram
	}
	return rest[afterHost:], hdrProgram
}

// untimedMessage finds the message of a line that carries no timestamp (a
// custom template, a relay that cut it): after "kernel:" if one of the
// first words is that tag, else the whole line, read as a relayed record.
func untimedMessage(line []byte) ([]byte, headerResult) {
	if line[0] == '<' {
		if gt := bytes.IndexByte(line[:min(len(line), 5)], '>'); gt > 0 {
			line = line[gt+1:]
		}
	}
	off := 0
	for range 3 {
		end := bytes.IndexByte(line[off:], ' ')
		if end < 0 {
			break
		}
		word := line[off : off+end]
		if bytes.IndexByte(word, '=') >= 0 {
			break
		}
		if string(word) == tagKernel {
			return kernelMessage(line[off+end+1:]), hdrKernel
		}
		off += end + 1
	}
	return line, hdrProgram
}

// isTag reports whether w is a syslog program tag: "sshd:", "sshd[12]:",
// "IN-work:".
func isTag(w []byte) bool {
	n := len(w)
	if n < 2 || w[n-1] != ':' {
		return false
	}
	w = w[:n-1]
	if n := len(w); w[n-1] == ']' {
		open := bytes.LastIndexByte(w, '[')
		if open <= 0 || open == n-2 || !allDigits(w[open+1:n-1]) {
			return false
		}
		w = w[:open]
	}
	for _, c := range w {
		if !(isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-' || c == '.' || c == '/' || c == '@') {
			return false
		}
	}
	return true
}

// kernelMessage returns the kernel's message after its tag, without the
// space and dmesg uptime ("[12345.678901] ") some syslog daemons keep.
func kernelMessage(rest []byte) []byte {
	if len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] == '[' {
		if j := uptimeEnd(rest); j > 0 {
			rest = rest[j:]
			if len(rest) > 0 && rest[0] == ' ' {
				rest = rest[1:]
			}
		}
	}
	return rest
}

// uptimeEnd returns the index after the "[%5lu.%06lu]" at the start of b
// that uptime would read, or 0: the same shape, without the value nobody
// asks for here. It is uptime's scan without the arithmetic because nearly
// every syslog line passes here: calling uptime instead costs 7 ns a line,
// 6% of BenchmarkParseLine.
func uptimeEnd(b []byte) int {
	i := 1
	for i < len(b) && b[i] == ' ' {
		i++
	}
	start := i
	for ; i < len(b) && isDigit(b[i]); i++ {
		if i-start >= 12 {
			return 0
		}
	}
	if i == start || i >= len(b) || b[i] != '.' {
		return 0
	}
	i++
	frac := i
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	if i == frac || i >= len(b) || b[i] != ']' {
		return 0
	}
	return i + 1
}
