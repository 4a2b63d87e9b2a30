//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sentry-nflog/sentry-nflog/internal/netnstest"
)

// natsBin is the real nats-server, built once from the version go.mod
// pins (its tool line) by natsServerBin.
var (
	natsBinOnce sync.Once
	natsBin     string
	natsBinErr  error
)

// natsServerBin returns the nats-server binary: NATS_SERVER if set (the
// Makefile's bin/nats-server), else one built from the pinned module.
func natsServerBin(t *testing.T) string {
	t.Helper()
	natsBinOnce.Do(func() {
		if p := os.Getenv("NATS_SERVER"); p != "" {
			natsBin = p
			return
		}
		natsBin = filepath.Join(filepath.Dir(bin), "nats-server")
		out, err := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsBinErr = fmt.Errorf("build nats-server: %v: %s", err, out)
		}
	})
	if natsBinErr != nil {
		t.Fatal(natsBinErr)
	}
	return natsBin
}

// natsProc is a nats-server running in a namespace (or, for the
// measurements, on the loopback address of the machine's own), with its
// store in a directory that outlives a restart.
type natsProc struct {
	t    *testing.T
	name string
	ns   *netnstest.NS // nil: the machine's namespace
	addr netip.AddrPort
	dir  string
	conf string

	mu   sync.Mutex
	logs bytes.Buffer
	cmd  *exec.Cmd
	done chan struct{}
}

// natsConf is a server's config: JetStream on, listening on addr, with
// extra text (cluster, authorization).
func natsConf(name string, addr netip.AddrPort, dir, extra string) string {
	return fmt.Sprintf("server_name: %s\nlisten: %q\njetstream: {store_dir: %q}\n%s\n",
		name, addr, filepath.Join(dir, "store"), extra)
}

// startNats starts a server on h's address, port 4222.
func startNats(t *testing.T, name string, h *netnstest.Host, extra string) *natsProc {
	t.Helper()
	return startNatsAt(t, name, h.NS, netip.AddrPortFrom(h.IP4, 4222), extra)
}

// startNatsAt starts a server in ns (nil: the machine's namespace)
// listening on addr.
func startNatsAt(t *testing.T, name string, ns *netnstest.NS, addr netip.AddrPort, extra string) *natsProc {
	t.Helper()
	p := &natsProc{t: t, name: name, ns: ns, addr: addr, dir: t.TempDir()}
	p.conf = filepath.Join(p.dir, "server.conf")
	if err := os.WriteFile(p.conf, []byte(natsConf(name, addr, p.dir, extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.log())
		}
	})
	return p
}

func (p *natsProc) url() string {
	return fmt.Sprintf("nats://%s", p.addr)
}

func (p *natsProc) start() {
	p.t.Helper()
	if p.ns != nil {
		p.cmd = p.ns.Command(context.Background(), natsServerBin(p.t), "-c", p.conf)
	} else {
		p.cmd = exec.Command(natsServerBin(p.t), "-c", p.conf)
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	ready := make(chan struct{})
	go func(done chan struct{}, cmd *exec.Cmd) {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.Contains(sc.Text(), "Server is ready") {
				once.Do(func() { close(ready) })
			}
		}
		cmd.Wait()
	}(p.done, p.cmd)
	select {
	case <-ready:
	case <-p.done:
		p.t.Fatalf("%s exited at start:\n%s", p.name, p.log())
	case <-time.After(15 * time.Second):
		p.t.Fatalf("%s not ready within 15s:\n%s", p.name, p.log())
	}
}

// kill sends SIGKILL: no clean shutdown, as a crash or a power cut.
func (p *natsProc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

func (p *natsProc) restart() {
	p.t.Helper()
	p.kill()
	p.start()
}

func (p *natsProc) pid() int { return p.cmd.Process.Pid }

func (p *natsProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// nsDialer makes nats.go's connections inside a namespace: every dial,
// reconnections included, creates its socket on a thread in ns.
type nsDialer struct{ ns *netnstest.NS }

func (d nsDialer) Dial(network, address string) (net.Conn, error) {
	var c net.Conn
	err := d.ns.Do(func() error {
		var err error
		c, err = net.DialTimeout(network, address, 2*time.Second)
		return err
	})
	return c, err
}

// natsClient connects the test itself to urls from inside ns.
func natsClient(t *testing.T, ns *netnstest.NS, urls []string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts = append(opts, nats.SetCustomDialer(nsDialer{ns}), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond),
		nats.NoCallbacksAfterClientClose())
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// streamInfo reads the bans stream's state, retrying while the servers
// settle (a restart, an election).
func streamInfo(t *testing.T, js jetstream.JetStream) *jetstream.StreamInfo {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := js.Stream(ctx, "sentry_bans")
		if err == nil {
			var info *jetstream.StreamInfo
			info, err = s.Info(ctx)
			if err == nil {
				cancel()
				return info
			}
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("stream info: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
