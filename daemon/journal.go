package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// The decision journal: what the daemon decided and applied, with its
// evidence, one JSON object a line, for `sentry-nflog history`. The
// daemon's decisions enter it through the door (journalAction), like every
// other way out; the bans it applies from the fleet, the manual bans it
// takes note of and the pardons it applies are written by the same writer,
// from the loop. Nothing else writes it.
//
// It is append-only and bounded: past JournalMax bytes the file is renamed
// to JournalOld (replacing the one before) and a new one begun, so the two
// never hold more than twice JournalMax. Lines are buffered and written
// each second (and at stop) in whole lines, so a slow disk costs the loop
// one write a second and a kill -9 loses at most the last second; a line
// cut short by a crash is cut off when the daemon opens the journal again,
// and skipped by readers.

// Files of the journal in state_dir, and its bound.
const (
	JournalFile = "journal.jsonl"
	JournalOld  = "journal.jsonl.1"
	JournalMax  = 16 << 20
)

// Actions of journal entries besides the rules' (ban, ignored,
// rate-limited).
const (
	// ActionBlock is a manual ban made with `sentry-nflog block`.
	ActionBlock = "block"
	// ActionPardon is a pardon applied: `unblock`, or a fleet's.
	ActionPardon = "pardon"
)

// OriginManual is the origin of what an operator did by hand (block,
// unblock) in the journal.
const OriginManual = "manual"

// JournalEntry is one line of the journal: the JSON shape `history --json`
// prints. Time is the decision's (the time the log or the kernel gave the
// packet that crossed the threshold; for a remote ban, when its host
// decided it; for a manual ban or a pardon, when it was made).
type JournalEntry struct {
	Time time.Time `json:"time"`
	// Action is ban, ignored or rate-limited (a rule's decision), block
	// or pardon.
	Action string `json:"action"`
	// Origin is daemon (this host's rules), fleet:<host> or manual.
	Origin string       `json:"origin"`
	Source netip.Prefix `json:"source"`
	// Address is the packet's source when Source is wider.
	Address netip.Addr `json:"address,omitzero"`
	Rule    string     `json:"rule,omitempty"`
	// BanSeconds is the ban's length; for a remote ban, what this host
	// applied of it.
	BanSeconds int64     `json:"ban_seconds,omitempty"`
	Hits       uint32    `json:"hits,omitempty"`
	Distinct   uint32    `json:"distinct_ports,omitempty"`
	Ports      []uint16  `json:"ports,omitempty"`
	Proto      string    `json:"proto,omitempty"`
	Flags      string    `json:"flags,omitempty"`
	FirstSeen  time.Time `json:"first_seen,omitzero"`
	Offence    uint32    `json:"offence,omitempty"`
	// Reason is a manual ban's, as given to block --reason.
	Reason string `json:"reason,omitempty"`
}

// decisionEntry is the journal's line of one of the daemon's decisions.
func decisionEntry(d *rules.Decision) JournalEntry {
	e := JournalEntry{
		Time: d.Time.UTC(), Action: d.Action.String(), Origin: actions.OriginDaemon, Source: d.Key,
		Rule: d.Rule, BanSeconds: int64(d.Ban / time.Second), Hits: d.Hits, Distinct: d.DistinctPorts,
		Ports: d.PortList(), Flags: d.Flags.String(), FirstSeen: d.FirstSeen.UTC(), Offence: d.Offence,
	}
	if d.Key.Bits() != d.Source.BitLen() {
		e.Address = d.Source
	}
	if e.Proto = parsers.ProtoName(d.Proto); e.Proto == "" {
		e.Proto = strconv.Itoa(int(d.Proto))
	}
	return e
}

// journal is the writer. It belongs to the loop: no locking.
type journal struct {
	dir string
	max int64
	f   *os.File
	// buf holds whole lines not yet written; size counts the current
	// file's bytes, written or buffered.
	buf  []byte
	size int64
	log  *slog.Logger
	// failing is set while writes fail, so the failure is logged once;
	// dropped counts the entries lost meanwhile.
	failing bool
	dropped uint64
}

// flushAt is how much the buffer holds before it is written without
// waiting for the second's tick (a burst of decisions).
const flushAt = 64 << 10

// openJournal opens the journal in dir for appending, creating dir and
// the file if needed, and cuts off a line a crash left unfinished.
func openJournal(dir string, max int64, log *slog.Logger) (*journal, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{dir: dir, max: max, log: log}
	if err := j.open(); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *journal) open() error {
	path := filepath.Join(j.dir, JournalFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	size, err := sealTail(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("journal: %s: %w", path, err)
	}
	j.f, j.size = f, size
	return nil
}

// sealTail cuts f after its last newline, if it does not end with one (a
// line a crash cut short), and returns its size.
func sealTail(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	if size == 0 {
		return 0, nil
	}
	n := min(size, 64<<10)
	tail := make([]byte, n)
	if _, err := f.ReadAt(tail, size-n); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	if tail[n-1] == '\n' {
		return size, nil
	}
	cut := size - n + int64(bytes.LastIndexByte(tail, '\n')+1)
	if cut == size-n && size > n {
		// No newline in the last 64 KiB, longer than any line written:
		// not ours to cut. End it, so the next line stands alone.
		if _, err := f.Write([]byte{'\n'}); err != nil {
			return 0, err
		}
		return size + 1, nil
	}
	if err := f.Truncate(cut); err != nil {
		return 0, err
	}
	return cut, nil
}

// add buffers e as one line; the file is rotated first if the line would
// take it past its bound.
func (j *journal) add(e *JournalEntry) {
	line, err := json.Marshal(e)
	if err != nil {
		j.log.Error("journal: cannot encode an entry", "err", err)
		return
	}
	line = append(line, '\n')
	if j.size > 0 && j.size+int64(len(line)) > j.max {
		j.rotate()
	}
	j.buf = append(j.buf, line...)
	j.size += int64(len(line))
	if len(j.buf) >= flushAt {
		j.flush()
	}
}

// flush writes the buffered lines. A failed write drops them (counted and
// logged once until writes work again), so a full disk cannot make the
// buffer grow without bound.
func (j *journal) flush() {
	if len(j.buf) == 0 || j.f == nil {
		return
	}
	n := bytes.Count(j.buf, []byte{'\n'})
	_, err := j.f.Write(j.buf)
	j.buf = j.buf[:0]
	if err != nil {
		j.dropped += uint64(n)
		if !j.failing {
			j.log.Error("journal: cannot write; decisions are missing from history until it works again", "path", j.f.Name(), "err", err)
		}
		j.failing = true
		return
	}
	if j.failing {
		j.log.Info("journal: writing again", "lost", j.dropped)
		j.failing, j.dropped = false, 0
	}
}

// rotate writes what is buffered, renames the file to JournalOld and
// begins a new one.
func (j *journal) rotate() {
	j.flush()
	j.f.Close()
	j.f = nil
	cur, old := filepath.Join(j.dir, JournalFile), filepath.Join(j.dir, JournalOld)
	if err := os.Rename(cur, old); err != nil {
		j.log.Error("journal: cannot rotate", "err", err)
	}
	if err := j.open(); err != nil {
		j.log.Error("journal: cannot begin a new file", "err", err)
		return
	}
}

// close writes what is buffered and closes the file.
func (j *journal) close() error {
	j.flush()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// journalAction is the door's journal element: every decision the daemon
// makes is appended, with its evidence.
type journalAction struct{ j *journal }

func (a journalAction) Act(d *rules.Decision) error {
	e := decisionEntry(d)
	a.j.add(&e)
	return nil
}

// note appends an entry that does not pass through the door (a remote
// ban, a manual ban, a pardon); without a journal (a dry run) it does
// nothing.
func (d *Daemon) note(e JournalEntry) {
	if d.journal != nil {
		d.journal.add(&e)
	}
}

// ReadJournal hands fn every entry of the journal in stateDir, oldest
// first: the rotated file, then the current one. Lines that are not
// entries (one cut short by a crash) are skipped and counted. fn's error
// stops the reading and is returned. A missing journal is empty.
func ReadJournal(stateDir string, fn func(*JournalEntry) error) (skipped int, err error) {
	for _, name := range []string{JournalOld, JournalFile} {
		n, err := readJournalFile(filepath.Join(stateDir, name), fn)
		skipped += n
		if err != nil {
			return skipped, err
		}
	}
	return skipped, nil
}

func readJournalFile(path string, fn func(*JournalEntry) error) (skipped int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e JournalEntry
		if json.Unmarshal(line, &e) != nil || e.Action == "" || !e.Source.IsValid() {
			skipped++
			continue
		}
		if err := fn(&e); err != nil {
			return skipped, err
		}
	}
	if err := sc.Err(); err != nil {
		return skipped, fmt.Errorf("%s: %w", path, err)
	}
	return skipped, nil
}
