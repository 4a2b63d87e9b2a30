package parsers

// LineState is what a LineParser carries from one line to the next that
// changes what later lines read: the year of classic syslog timestamps
// (inferred once, then carried and bumped at the turn of the year) and the
// time of the last dated line (which a record without a timestamp takes).
// It is a small value; the zero LineState is a new parser's.
//
// With State, Resume and Span, a stream's lines can be read in pieces by
// several parsers at once, each starting from a guess of the state the
// pieces before leave, and checked in order afterwards: a piece whose lines
// did not use the guess, or got it right, reads exactly as it would have in
// one parser (see Span.After).
type LineState struct {
	haveYear  bool
	year      int
	lastMonth int
	lastDay   int

	// last is the last dated line's time, kept as its stamp so that the
	// conversion is paid only when a record without one comes.
	haveLast bool
	last     stamp
}

// Span records how the lines a parser read since its last Resume (or since
// it was made) used the LineState they started from, and what they left.
type Span struct {
	from, to LineState
	// yearUsed: a line had a classic timestamp; the first one's month,
	// day and year. The year of each later one follows from that year
	// and the lines of the span alone.
	yearUsed                        bool
	firstMonth, firstDay, firstYear int
	// lastSet: a line set the last line's time; lastUsed: a record without
	// a timestamp took the one it started from (or found none).
	lastSet, lastUsed bool
	undated           uint64
}

// State returns the state the lines read so far leave.
func (p *LineParser) State() LineState { return p.state }

// Resume makes the parser read on as if the lines that left s had been its
// own, and starts a new Span.
func (p *LineParser) Resume(s LineState) {
	p.state = s
	p.span = Span{from: s}
	// The last header's year was inferred from another state.
	p.same = p.same[:0]
}

// Span returns the record of the lines read since the last Resume.
func (p *LineParser) Span() Span {
	sp := p.span
	sp.to = p.state
	return sp
}

// Undated returns how many of the span's records carried no timestamp and
// took a borrowed one (see LineParser.UndatedRecords).
func (sp *Span) Undated() uint64 { return sp.undated }

// After reports whether the span's lines read the same after state s as
// they did after the state they were read from, and returns the state they
// leave after s. It checks only what the lines used: the year of the first
// classic timestamp (the years after it follow from it), and the last
// line's time if a record without a timestamp took it. p is a parser with
// the options of the one that read the span (they fix the first year).
func (sp *Span) After(p *LineParser, s LineState) (LineState, bool) {
	out := s
	if sp.yearUsed {
		if out.inferYear(p.refYear, p.refMonth, sp.firstMonth, sp.firstDay) != sp.firstYear {
			return s, false
		}
		out.haveYear, out.year, out.lastMonth, out.lastDay = sp.to.haveYear, sp.to.year, sp.to.lastMonth, sp.to.lastDay
	}
	if sp.lastUsed && (s.haveLast != sp.from.haveLast || s.last != sp.from.last) {
		return s, false
	}
	if sp.lastSet {
		out.haveLast, out.last = true, sp.to.last
	}
	return out, true
}
