//go:build linux

// Command sentry-lab is the demo's and the measurements' companion: a TCP
// listener and the scanners of internal/scanner, run inside a network
// namespace with `ip netns exec`. It is a test tool, not part of the
// product: sentry-nflog itself never opens a network socket.
//
//	sentry-lab listen PORT [--for 60s]
//	sentry-lab connect [--src ADDR] [--timeout 1s] DST PORTS
//	sentry-lab synscan [--src ADDR] [--rate N] DST PORTS
//	sentry-lab probe [--src ADDR] --flags fin|null|xmas|syn DST PORT
//	sentry-lab udp [--src ADDR] DST PORTS
//
// PORTS is a list such as 1-1024,8080. Exit status 0 means the action
// worked; connect exits 1 when no port was open.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/scanner"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sentry-lab listen|connect|synscan|probe|udp ...")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1], os.Args[2:]); err != nil {
		var ex exitCode
		if errors.As(err, &ex) {
			os.Exit(int(ex))
		}
		fmt.Fprintln(os.Stderr, "sentry-lab:", err)
		os.Exit(2)
	}
}

type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func run(ctx context.Context, cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	src := fs.String("src", "", "source address (default: the kernel's choice)")
	timeout := fs.Duration("timeout", time.Second, "connect timeout")
	rate := fs.Int("rate", 0, "SYNs per second (0: as fast as possible)")
	flagsName := fs.String("flags", "syn", "TCP flags of a probe: syn, fin, null, xmas")
	dur := fs.Duration("for", time.Minute, "how long to listen")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var srcAddr netip.Addr
	if *src != "" {
		a, err := netip.ParseAddr(*src)
		if err != nil {
			return err
		}
		srcAddr = a
	}
	if cmd == "listen" {
		if fs.NArg() != 1 {
			return errors.New("listen PORT")
		}
		return listen(ctx, fs.Arg(0), *dur)
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%s DST PORTS", cmd)
	}
	dst, err := netip.ParseAddr(fs.Arg(0))
	if err != nil {
		return err
	}
	ports, err := parsePorts(fs.Arg(1))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	switch cmd {
	case "connect":
		res, err := scanner.ConnectScan(ctx, srcAddr, dst, ports, *timeout)
		if err != nil {
			return err
		}
		open := res.Ports(scanner.Open)
		fmt.Printf("%s: open %v, refused %d, filtered %d, unreachable %d\n", dst, open,
			len(res.Ports(scanner.Refused)), len(res.Ports(scanner.Filtered)), len(res.Ports(scanner.Unreachable)))
		if len(open) == 0 {
			return exitCode(1)
		}
		return nil
	case "synscan":
		r, err := scanner.SYNScan(ctx, srcAddr, dst, ports, *rate)
		if err != nil {
			return err
		}
		fmt.Printf("%s: sent %d SYNs in %s; learned %d closed ports (%d RST) and %d open %v (%d SYN-ACK)\n",
			dst, r.Sent, r.Sending.Round(time.Millisecond), len(r.Closed), r.Resets, len(r.Open), r.Open, r.SynAcks)
		return nil
	case "probe":
		f, ok := map[string]uint8{"syn": scanner.SYN, "fin": scanner.FIN, "null": scanner.NULL, "xmas": scanner.XMAS}[*flagsName]
		if !ok {
			return fmt.Errorf("unknown --flags %q", *flagsName)
		}
		for _, p := range ports {
			if err := scanner.RawProbe(ctx, srcAddr, dst, p, f); err != nil {
				return err
			}
		}
		return nil
	case "udp":
		return scanner.UDPProbe(ctx, srcAddr, dst, ports)
	}
	return fmt.Errorf("unknown command %q", cmd)
}

// listen accepts and closes connections until ctx ends or d passes.
func listen(ctx context.Context, port string, d time.Duration) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("", port))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		c.Close()
	}
}

func parsePorts(s string) ([]uint16, error) {
	var out []uint16
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("bad port %q", part)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a {
				return nil, fmt.Errorf("bad range %q", part)
			}
		}
		for p := a; p <= b; p++ {
			out = append(out, uint16(p))
		}
	}
	return out, nil
}
