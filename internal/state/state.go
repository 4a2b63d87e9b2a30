// Package state keeps what the daemon must not forget across restarts and
// reboots: the offence history (for escalation, and to restore bans that
// still have time left after a reboot emptied the kernel's sets) and the
// positions of followed log files.
//
// Two files in state_dir hold it, each replaced atomically (temporary file,
// fsync, rename, fsync of the directory), so a crash at any moment leaves
// the old or the new version, never a mix. state.json holds everything,
// as of one moment; positions.json holds newer positions only, written
// while nothing else changed, and names the state.json it extends (its
// generation): positions and the offences they produced are always read
// back as they were at one moment, so a restart neither repeats nor skips
// a decision.
//
// state.json is JSON Lines (format 2): a header object, then one offence
// per line as an array, written and read a line at a time, so that loading
// costs time and memory in proportion to what is kept. Format 1 (one JSON
// document) is still read.
package state

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// FileName is the state file's name in state_dir; PositionsFile holds
// positions saved since.
const (
	FileName      = "state.json"
	PositionsFile = "positions.json"
)

// version is the format written; Load reads 1 and 2 and refuses newer ones.
const version = 2

// State is the saved state.
type State struct {
	// Saved is when it was written.
	Saved time.Time `json:"saved"`
	// Offences is the engine's history, one entry per key.
	Offences []rules.Offence `json:"offences"`
	Files    []Position      `json:"files,omitempty"`
	// PardonOffset is how far the pardons file has been applied: each
	// pardon applies once.
	PardonOffset int64 `json:"pardon_offset,omitempty"`
	// BlocksSeen is the time of the last manual ban (`block`) the daemon
	// has taken note of, in its decision journal: each is noted once.
	BlocksSeen time.Time `json:"blocks_seen,omitzero"`
	// Generation numbers the saves of state.json: the caller makes each
	// Save's one more than the last, and SavePositions names the one its
	// positions extend.
	Generation uint64 `json:"generation,omitempty"`
}

// Position is how far a followed file was read (sources.FilePosition).
type Position struct {
	Path   string `json:"path"`
	Dev    uint64 `json:"dev"`
	Inode  uint64 `json:"inode"`
	Offset int64  `json:"offset"`
	Sum    uint32 `json:"sum,omitempty"`
	SumLen uint32 `json:"sum_len,omitempty"`
	Size   int64  `json:"size,omitempty"`
	Lines  uint64 `json:"lines,omitempty"`
	Events uint64 `json:"events,omitempty"`
}

// header is format 2's first line.
type header struct {
	Version      int        `json:"version"`
	Saved        time.Time  `json:"saved"`
	Generation   uint64     `json:"generation,omitempty"`
	PardonOffset int64      `json:"pardon_offset,omitempty"`
	BlocksSeen   time.Time  `json:"blocks_seen,omitzero"`
	Files        []Position `json:"files,omitempty"`
	// Offences is how many offence lines follow, to tell a whole file.
	Offences int `json:"offences"`
}

type positions struct {
	Version    int        `json:"version"`
	Generation uint64     `json:"generation"`
	Files      []Position `json:"files"`
}

// Load reads the state in dir, all of it: LoadBounded without a bound.
func Load(dir string) (*State, error) { return LoadBounded(dir, 0, time.Time{}) }

// LoadBounded reads the state in dir, keeping at most max offences (0: no
// bound): every one still banned at now, and the most recent of the others
// (by their last ban or pardon). A missing file is an empty state. A file
// that cannot be read as state is moved aside (to state.json.bad-TIME) so
// that it is kept for inspection and the daemon can start; the error says
// so. Newer positions from positions.json replace the file's when they
// extend it.
func LoadBounded(dir string, max int, now time.Time) (*State, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		// Positions may have been saved before any offence.
		st := &State{}
		if p, err := readPositions(dir); err == nil && p.Generation == 0 {
			st.Files = p.Files
		}
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	k := keeper{max: max, now: now.UnixNano()}
	st, err := read(bufio.NewReaderSize(f, 64<<10), &k)
	f.Close()
	if err != nil {
		bad := fmt.Sprintf("%s.bad-%s", path, time.Now().UTC().Format("20060102T150405"))
		if rerr := os.Rename(path, bad); rerr != nil {
			return nil, fmt.Errorf("state: %s is unreadable (%v) and cannot be moved aside: %w", path, err, rerr)
		}
		return &State{}, fmt.Errorf("state: %s is unreadable (%v): moved to %s, starting without history", path, err, bad)
	}
	st.Offences = k.result()
	if p, err := readPositions(dir); err == nil && p.Generation == st.Generation {
		st.Files = p.Files
	}
	return st, nil
}

// read decodes format 1 or 2 from r, handing offences to k.
func read(r *bufio.Reader, k *keeper) (*State, error) {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	var st State
	var h header
	ver := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		if name != "version" && ver == 0 {
			return nil, errors.New("no format version first")
		}
		switch name {
		case "version":
			if err := dec.Decode(&ver); err != nil {
				return nil, err
			}
			if ver < 1 || ver > version {
				return nil, fmt.Errorf("format version %d, this binary reads 1-%d", ver, version)
			}
		case "saved":
			err = dec.Decode(&st.Saved)
		case "generation":
			err = dec.Decode(&st.Generation)
		case "pardon_offset":
			err = dec.Decode(&st.PardonOffset)
		case "blocks_seen":
			err = dec.Decode(&st.BlocksSeen)
		case "files":
			err = dec.Decode(&st.Files)
		case "offences":
			if ver == 1 {
				err = readOffences1(dec, k)
			} else if err = dec.Decode(&h.Offences); err == nil {
				k.expect(h.Offences)
			}
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if ver == 2 {
		n, err := readOffences2(io.MultiReader(dec.Buffered(), r), k)
		if err != nil {
			return nil, err
		}
		if n != h.Offences {
			return nil, fmt.Errorf("%d offences, the header says %d: the file is cut short", n, h.Offences)
		}
	}
	return &st, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("want %v, got %v", d, tok)
	}
	return nil
}

// readOffences1 reads format 1's offences array one element at a time.
func readOffences1(dec *json.Decoder, k *keeper) error {
	if err := expectDelim(dec, '['); err != nil {
		return err
	}
	for dec.More() {
		var o rules.Offence
		if err := dec.Decode(&o); err != nil {
			return err
		}
		k.add(o)
	}
	return expectDelim(dec, ']')
}

// readOffences2 reads format 2's offence lines and returns how many.
func readOffences2(r io.Reader, k *keeper) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 4096)
	n := 0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		o, err := parseOffence(line)
		if err != nil {
			return n, fmt.Errorf("offence %d: %w", n+1, err)
		}
		k.add(o)
		n++
	}
	return n, sc.Err()
}

// parseOffence reads ["KEY",COUNT,LAST_BAN,BANNED_UNTIL,PARDONED_AT], the
// times in Unix nanoseconds (0: none).
func parseOffence(b []byte) (rules.Offence, error) {
	var o rules.Offence
	if !bytes.HasPrefix(b, []byte(`["`)) || !bytes.HasSuffix(b, []byte("]")) {
		return o, errors.New("not an offence line")
	}
	b = b[2 : len(b)-1]
	q := bytes.IndexByte(b, '"')
	if q < 0 {
		return o, errors.New("unterminated key")
	}
	key, err := netip.ParsePrefix(string(b[:q]))
	if err != nil {
		return o, err
	}
	o.Key = key
	rest := b[q+1:]
	var nums [4]int64
	for i := range nums {
		if len(rest) == 0 || rest[0] != ',' {
			return o, errors.New("missing field")
		}
		rest = rest[1:]
		end := bytes.IndexByte(rest, ',')
		if end < 0 {
			end = len(rest)
		}
		v, err := strconv.ParseInt(string(bytes.TrimSpace(rest[:end])), 10, 64)
		if err != nil {
			return o, err
		}
		nums[i] = v
		rest = rest[end:]
	}
	if len(rest) != 0 || nums[0] < 0 || nums[0] > 1<<32-1 {
		return o, errors.New("bad fields")
	}
	o.Count = uint32(nums[0])
	o.LastBan, o.BannedUntil, o.PardonedAt = fromNano(nums[1]), fromNano(nums[2]), fromNano(nums[3])
	return o, nil
}

func fromNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func toNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// appendOffence appends o as a format 2 line.
func appendOffence(b []byte, o *rules.Offence) []byte {
	b = append(b, '[', '"')
	b = o.Key.AppendTo(b)
	b = append(b, '"', ',')
	b = strconv.AppendUint(b, uint64(o.Count), 10)
	for _, t := range []time.Time{o.LastBan, o.BannedUntil, o.PardonedAt} {
		b = append(b, ',')
		b = strconv.AppendInt(b, toNano(t), 10)
	}
	return append(b, ']', '\n')
}

// keeper keeps the offences a bounded load returns: every active one, and
// the most recent others, in a min-heap by recency capped at max.
type keeper struct {
	max    int
	now    int64
	active []rules.Offence
	rest   offenceHeap
}

func recency(o *rules.Offence) int64 { return max(toNano(o.LastBan), toNano(o.PardonedAt)) }

// expect makes room for n offences, as many as a format 2 header
// announces (bounded by max).
func (k *keeper) expect(n int) {
	if n <= 0 {
		return
	}
	if k.max <= 0 {
		k.active = make([]rules.Offence, 0, n)
		return
	}
	k.rest = make(offenceHeap, 0, min(n, k.max))
}

func (k *keeper) add(o rules.Offence) {
	if k.max <= 0 || toNano(o.BannedUntil) > k.now {
		k.active = append(k.active, o)
		return
	}
	if len(k.rest) < k.max {
		// A heap only once full: a state within the bound costs appends.
		k.rest = append(k.rest, o)
		if len(k.rest) == k.max {
			heap.Init(&k.rest)
		}
		return
	}
	if recency(&o) > recency(&k.rest[0]) {
		k.rest[0] = o
		heap.Fix(&k.rest, 0)
	}
}

func (k *keeper) result() []rules.Offence {
	if over := len(k.active) + len(k.rest) - k.max; k.max > 0 && over > 0 {
		// The active ones take their room from the oldest others.
		slices.SortFunc(k.rest, func(a, b rules.Offence) int { return cmp.Compare(recency(&b), recency(&a)) })
		k.rest = k.rest[:max(len(k.rest)-over, 0)]
	}
	if len(k.rest) == 0 {
		return k.active
	}
	return append(k.rest, k.active...)
}

type offenceHeap []rules.Offence

func (h offenceHeap) Len() int           { return len(h) }
func (h offenceHeap) Less(i, j int) bool { return recency(&h[i]) < recency(&h[j]) }
func (h offenceHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }

// Push and Pop complete heap.Interface; the keeper only uses Init and Fix.
func (h *offenceHeap) Push(x any) { *h = append(*h, x.(rules.Offence)) }
func (h *offenceHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Save writes s to dir atomically as state.json (format 2), creating dir
// if needed. Positions saved earlier with SavePositions for another
// generation stop applying.
func Save(dir string, s *State) error {
	return WriteAtomic(dir, FileName, func(w *bufio.Writer) error {
		h, err := json.Marshal(header{Version: version, Saved: s.Saved, Generation: s.Generation,
			PardonOffset: s.PardonOffset, BlocksSeen: s.BlocksSeen, Files: s.Files, Offences: len(s.Offences)})
		if err != nil {
			return err
		}
		w.Write(h)
		w.WriteByte('\n')
		var line []byte
		for i := range s.Offences {
			line = appendOffence(line[:0], &s.Offences[i])
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
		return nil
	})
}

// SavePositions writes files to dir atomically as positions.json, for the
// state.json of generation gen: Load takes them instead of that file's.
func SavePositions(dir string, gen uint64, files []Position) error {
	return WriteAtomic(dir, PositionsFile, func(w *bufio.Writer) error {
		data, err := json.Marshal(positions{Version: 1, Generation: gen, Files: files})
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
}

func readPositions(dir string) (*positions, error) {
	data, err := os.ReadFile(filepath.Join(dir, PositionsFile))
	if err != nil {
		return nil, err
	}
	var p positions
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, err
	}
	if p.Version != 1 {
		return nil, fmt.Errorf("positions format %d", p.Version)
	}
	return &p, nil
}

// WriteAtomic writes dir/name through fill, by a temporary file synced and
// renamed over it, and syncs the directory, creating dir if needed: a
// crash at any moment leaves the old file or the new one, never a mix.
func WriteAtomic(dir, name string, fill func(*bufio.Writer) error) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	w := bufio.NewWriterSize(tmp, 256<<10)
	if err := fill(w); err != nil {
		tmp.Close()
		return fmt.Errorf("state: write %s: %w", tmp.Name(), err)
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("state: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("state: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	// The rename is durable only once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("state: sync %s: %w", dir, err)
	}
	return nil
}
