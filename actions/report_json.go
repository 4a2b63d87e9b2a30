package actions

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// AppendJSON appends d in its JSON shape (DecisionJSON) exactly as
// json.Marshal(ToJSON(d)) writes it, without reflection or allocation in
// the common case: replay writes thousands of decisions a second, and
// encoding/json made that a few percent of a replay's time.
func AppendJSON(b []byte, d *rules.Decision) []byte {
	b = append(b, `{"time":"`...)
	b = d.Time.AppendFormat(b, time.RFC3339Nano) // digits and -:.TZ+, nothing to escape
	b = append(b, `","action":`...)
	b = appendJSONString(b, d.Action.String())
	b = append(b, `,"source":`...)
	if d.Key.IsValid() {
		b = append(b, '"')
		b = d.Key.AppendTo(b) // digits, hex, '.', ':' and '/'
		b = append(b, '"')
	} else {
		b = appendJSONString(b, d.Key.String())
	}
	b = append(b, `,"address":`...)
	if d.Source.IsValid() && d.Source.Zone() == "" {
		b = append(b, '"')
		b = d.Source.AppendTo(b)
		b = append(b, '"')
	} else {
		b = appendJSONString(b, d.Source.String())
	}
	b = append(b, `,"rule":`...)
	b = appendJSONString(b, d.Rule)
	b = append(b, `,"ban_seconds":`...)
	b = strconv.AppendInt(b, int64(d.Ban/time.Second), 10)
	b = append(b, `,"hits":`...)
	b = strconv.AppendUint(b, uint64(d.Hits), 10)
	b = append(b, `,"distinct_ports":`...)
	b = strconv.AppendUint(b, uint64(d.DistinctPorts), 10)
	b = append(b, `,"ports":`...)
	if d.NPorts == 0 {
		b = append(b, "null"...) // PortList's nil slice
	} else {
		b = append(b, '[')
		for i := range int(d.NPorts) {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(d.Ports[i]), 10)
		}
		b = append(b, ']')
	}
	b = append(b, `,"proto":"`...)
	if n := parsers.ProtoName(d.Proto); n != "" {
		b = append(b, n...)
	} else {
		b = strconv.AppendUint(b, uint64(d.Proto), 10)
	}
	b = append(b, '"')
	if d.Flags != 0 {
		b = append(b, `,"flags":"`...)
		b = append(b, d.Flags.String()...) // upper-case words and spaces
		b = append(b, '"')
	}
	b = append(b, `,"first_seen":"`...)
	b = d.FirstSeen.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","offence":`...)
	b = strconv.AppendUint(b, uint64(d.Offence), 10)
	return append(b, '}')
}

// appendJSONString appends s quoted as encoding/json quotes it: printable
// ASCII other than the characters it escapes is copied, anything else is
// left to encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
