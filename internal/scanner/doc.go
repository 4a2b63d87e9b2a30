// Package scanner is a small port scanner for end-to-end tests and
// measurements of the daemon: TCP connect scans, single raw TCP segments with
// any flags (SYN, FIN, NULL, XMAS), UDP probes and a fast stateless SYN scan
// that counts what the scanner learns before a ban lands.
//
// It owns no namespace handling. Every socket is created on the calling
// goroutine, so a caller that runs a function inside a network namespace on a
// locked thread (netnstest's NS.Do) scans from that namespace:
//
//	err := pair.Attacker.Do(func() error {
//		res, err = scanner.ConnectScan(ctx, src, dst, ports, time.Second)
//		return err
//	})
//
// Helper goroutines only use sockets that are already open. Every function is
// bounded: it sends at most one probe per port given (the kernel may
// retransmit a connect's SYN) and stops when its context ends.
//
// Raw probes need CAP_NET_RAW; in a namespace created by root they have it.
package scanner
