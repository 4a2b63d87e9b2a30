package actions

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestNormalizeKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.77/24", "192.0.2.0/24"},
		{"::ffff:192.0.2.1/128", "192.0.2.1/32"},
		{"2001:db8::1:2:3:4/64", "2001:db8::/64"},
	}
	for _, tt := range tests {
		got, err := normalizeKey(netip.MustParsePrefix(tt.in))
		if err != nil || got.String() != tt.want {
			t.Errorf("normalizeKey(%s) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if _, err := normalizeKey(netip.Prefix{}); err == nil {
		t.Error("normalizeKey(invalid) succeeded")
	}
	if _, err := normalizeKey(netip.MustParsePrefix("::ffff:0:0/95")); err == nil {
		t.Error("normalizeKey(IPv4-mapped /95) succeeded")
	}
}

func TestErrnoOf(t *testing.T) {
	tests := []struct {
		err  error
		want syscall.Errno
	}{
		{fmt.Errorf("receiveAckAware: %v", syscall.EPERM), syscall.EPERM},
		{fmt.Errorf("conn.Receive: %w", errors.Join(syscall.EEXIST)), syscall.EEXIST},
		{errors.New("receiveAckAware: netlink receive: no such file or directory"), syscall.ENOENT},
		{errors.New("something else"), 0},
		{nil, 0},
	}
	for _, tt := range tests {
		if got := errnoOf(tt.err); got != tt.want {
			t.Errorf("errnoOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	err := kernelError("add", fmt.Errorf("x: %v", syscall.EPERM))
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Errorf("kernelError(EPERM) = %v", err)
	}
	err = kernelError("add", fmt.Errorf("x: %v", syscall.EEXIST))
	if !errors.Is(err, syscall.EEXIST) || strings.Contains(err.Error(), "CAP_NET_ADMIN") || !strings.HasPrefix(err.Error(), "nftables: add: ") {
		t.Errorf("kernelError(EEXIST) = %v", err)
	}
}
