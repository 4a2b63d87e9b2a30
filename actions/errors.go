package actions

import (
	"errors"
	"strings"
	"syscall"
)

// Error is a failure of the kernel or of netlink: the operation, the
// underlying error and, when known, the kernel's errno (reachable with
// errors.Is, so errors.Is(err, syscall.EEXIST) and errors.Is(err,
// os.ErrPermission) work). A permission error names CAP_NET_ADMIN.
type Error struct {
	Op    string
	Errno syscall.Errno
	Err   error
}

func (e *Error) Error() string {
	s := "nftables: " + e.Op + ": " + e.Err.Error()
	if e.Errno == syscall.EPERM || e.Errno == syscall.EACCES {
		s += " (needs CAP_NET_ADMIN in the target network namespace; run as root or grant the capability)"
	}
	return s
}

// Unwrap returns the underlying error and the errno, if known.
func (e *Error) Unwrap() []error {
	if e.Errno != 0 {
		return []error{e.Err, e.Errno}
	}
	return []error{e.Err}
}

// kernelError wraps err from google/nftables with the operation. That
// library formats some errors with %v, losing the errno; it is recovered
// from the text.
func kernelError(op string, err error) error {
	return &Error{Op: op, Err: err, Errno: errnoOf(err)}
}

// knownErrnos are the errnos recognised in error text.
var knownErrnos = [...]syscall.Errno{
	syscall.EPERM, syscall.EACCES, syscall.ENOENT, syscall.EEXIST, syscall.EBUSY, syscall.EINVAL,
	syscall.ENOBUFS, syscall.ENOSPC, syscall.ENOMEM, syscall.EOPNOTSUPP, syscall.ERANGE, syscall.E2BIG,
}

// errnoOf returns the errno inside err, or 0.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	msg := err.Error()
	for _, e := range knownErrnos {
		if strings.HasSuffix(msg, e.Error()) {
			return e
		}
	}
	return 0
}
