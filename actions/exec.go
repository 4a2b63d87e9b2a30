//go:build unix

package actions

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults for NewExec.
const (
	// DefaultExecTimeout bounds one run of the command.
	DefaultExecTimeout = 10 * time.Second
	// DefaultExecConcurrency bounds how many runs may be in flight.
	DefaultExecConcurrency = 4
	// execOutputLimit is how much of the command's combined output is kept
	// for an error message.
	execOutputLimit = 4 << 10
)

// ErrExecBusy is returned (wrapped) by Exec.Run when the maximum number of
// runs is already in flight; the run is dropped and counted, not queued.
var ErrExecBusy = errors.New("exec: too many runs in flight")

// ExecFields are the values substituted into the command's arguments. The
// caller fills them from a decision; Exec knows nothing of the rules engine.
// Source and Address mean what "source" and "address" mean in a decision's
// JSON (DecisionJSON).
type ExecFields struct {
	// Source is the ban key, always a prefix such as 203.0.113.7/32 or
	// 2001:db8:1:2::/64: {source}.
	Source string
	// Address is the single address whose packet crossed the threshold,
	// such as 2001:db8:1:2::7: {address}.
	Address string
	// Rule is the rule's name: {rule}.
	Rule string
	// Ports are the destination ports seen, comma-separated in {ports}.
	Ports []uint16
	// Ban is the ban's duration, whole seconds in {ban_seconds}.
	Ban time.Duration
	// Hits is the number of matching packets: {hits}.
	Hits uint32
	// Action is what was decided ("ban", "ignored", ...): {action}.
	Action string
	// Offence counts the key's bans, this one included: {offence}.
	Offence uint32
	// Time is when the decision was made, RFC 3339 in {time} (empty if
	// zero).
	Time time.Time
}

// placeholders lists the names accepted in braces, in the order of the
// field ids below.
var placeholders = [...]string{"source", "address", "rule", "ports", "ban_seconds", "hits", "action", "offence", "time"}

func (f *ExecFields) value(id int) string {
	switch placeholders[id] {
	case "source":
		return f.Source
	case "address":
		return f.Address
	case "rule":
		return f.Rule
	case "ports":
		var b strings.Builder
		for i, p := range f.Ports {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatUint(uint64(p), 10))
		}
		return b.String()
	case "ban_seconds":
		return strconv.FormatInt(int64(f.Ban/time.Second), 10)
	case "hits":
		return strconv.FormatUint(uint64(f.Hits), 10)
	case "action":
		return f.Action
	case "offence":
		return strconv.FormatUint(uint64(f.Offence), 10)
	case "time":
		if f.Time.IsZero() {
			return ""
		}
		return f.Time.Format(time.RFC3339)
	}
	return ""
}

// segment is literal text (field < 0) or a placeholder.
type segment struct {
	text  string
	field int
}

// Exec runs a configured command for decisions. It never uses a shell: each
// argument is substituted on its own, so an attacker-influenced value
// cannot split into further arguments or run code. Run is safe for
// concurrent use.
type Exec struct {
	argv    [][]segment
	name    string
	timeout time.Duration
	slots   chan struct{}
	dropped atomic.Uint64
}

// NewExec compiles argv (argv[0] is the program, looked up in PATH when it
// has no slash). Placeholders are {source} (the ban key, a prefix)
// {address} (the single address) {rule} {ports} {ban_seconds} {hits}
// {action} {offence} {time}, as documented on ExecFields; any other {word}
// is an error, other braces are literal. A zero timeout selects
// DefaultExecTimeout, a zero maxConcurrent DefaultExecConcurrency.
func NewExec(argv []string, timeout time.Duration, maxConcurrent int) (*Exec, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("exec: empty command")
	}
	if timeout < 0 || maxConcurrent < 0 {
		return nil, fmt.Errorf("exec: negative timeout %v or concurrency %d", timeout, maxConcurrent)
	}
	if timeout == 0 {
		timeout = DefaultExecTimeout
	}
	if maxConcurrent == 0 {
		maxConcurrent = DefaultExecConcurrency
	}
	e := &Exec{name: argv[0], timeout: timeout, slots: make(chan struct{}, maxConcurrent)}
	for i, a := range argv {
		segs, err := compileArg(a)
		if err != nil {
			return nil, fmt.Errorf("exec: argument %d %q: %w", i, a, err)
		}
		e.argv = append(e.argv, segs)
	}
	return e, nil
}

func compileArg(a string) ([]segment, error) {
	var segs []segment
	lit := 0
	for i := 0; i < len(a); i++ {
		if a[i] != '{' {
			continue
		}
		j := i + 1
		for j < len(a) && (a[j] == '_' || a[j] >= 'a' && a[j] <= 'z') {
			j++
		}
		if j == i+1 || j >= len(a) || a[j] != '}' {
			continue // not a {word}: literal
		}
		name := a[i+1 : j]
		id := -1
		for k, p := range placeholders {
			if p == name {
				id = k
			}
		}
		if id < 0 {
			return nil, fmt.Errorf("unknown placeholder {%s} (known: {%s})", name, strings.Join(placeholders[:], "} {"))
		}
		if lit < i {
			segs = append(segs, segment{text: a[lit:i], field: -1})
		}
		segs = append(segs, segment{field: id})
		lit = j + 1
		i = j
	}
	if lit < len(a) || len(segs) == 0 {
		segs = append(segs, segment{text: a[lit:], field: -1})
	}
	return segs, nil
}

// Args returns the argument vector for f.
func (e *Exec) Args(f ExecFields) []string {
	out := make([]string, len(e.argv))
	for i, segs := range e.argv {
		var b strings.Builder
		for _, s := range segs {
			if s.field < 0 {
				b.WriteString(s.text)
			} else {
				b.WriteString(f.value(s.field))
			}
		}
		out[i] = b.String()
	}
	return out
}

// Dropped returns how many runs were refused with ErrExecBusy.
func (e *Exec) Dropped() uint64 { return e.dropped.Load() }

// Run runs the command for f and waits for it. If the maximum number of
// runs is in flight it returns ErrExecBusy at once. The command runs in its
// own process group, which is killed when the timeout passes or ctx ends.
// A failure's error carries the first 4 KiB of combined stdout and stderr.
func (e *Exec) Run(ctx context.Context, f ExecFields) error {
	select {
	case e.slots <- struct{}{}:
	default:
		e.dropped.Add(1)
		return fmt.Errorf("exec %s: %w (limit %d)", e.name, ErrExecBusy, cap(e.slots))
	}
	defer func() { <-e.slots }()

	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	args := e.Args(f)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole group: a shell script's children must not outlive it.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A grandchild that escaped the group may hold the pipes open.
	cmd.WaitDelay = time.Second
	out := &headBuffer{max: execOutputLimit}
	cmd.Stdout = out
	cmd.Stderr = out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("exec %s: process group killed (timeout %v): %w; output: %q", e.name, e.timeout, ctxErr, out.String())
	}
	return fmt.Errorf("exec %s: %w; output: %q", e.name, err, out.String())
}

// headBuffer keeps the first max bytes written and discards the rest, so a
// chatty command neither blocks on a full pipe nor grows memory.
type headBuffer struct {
	max       int
	b         []byte
	truncated bool
}

func (h *headBuffer) Write(p []byte) (int, error) {
	room := h.max - len(h.b)
	if len(p) > room {
		h.truncated = true
	}
	h.b = append(h.b, p[:min(room, len(p))]...)
	return len(p), nil
}

func (h *headBuffer) String() string {
	if h.truncated {
		return string(h.b) + "..."
	}
	return string(h.b)
}
