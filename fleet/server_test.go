package fleet

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// testServer is a real nats-server, embedded: JetStream on, a temporary
// store, a port of its own on the loopback address. Restart keeps the port
// and the store, as a restarted server would.
type testServer struct {
	t    *testing.T
	dir  string
	port int
	conf string // extra config text (authorization), "" for none
	s    *server.Server
}

func startServer(t *testing.T, conf string) *testServer {
	t.Helper()
	ts := &testServer{t: t, dir: t.TempDir(), port: freePort(t), conf: conf}
	ts.start()
	t.Cleanup(ts.stop)
	return ts
}

// freePort returns a loopback TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (ts *testServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", ts.port) }

func (ts *testServer) start() {
	ts.t.Helper()
	conf := fmt.Sprintf("listen: 127.0.0.1:%d\njetstream: {store_dir: %q}\n%s\n", ts.port, ts.dir, ts.conf)
	path := filepath.Join(ts.dir, "server.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		ts.t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		ts.t.Fatalf("server config: %v\n%s", err, conf)
	}
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		ts.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		ts.t.Fatal("nats-server not ready within 10s")
	}
	ts.s = s
}

func (ts *testServer) stop() {
	if ts.s != nil {
		ts.s.Shutdown()
		ts.s.WaitForShutdown()
		ts.s = nil
	}
}

func (ts *testServer) restart() {
	ts.stop()
	ts.start()
}

// hostUser is one host's nkey and the server's authorization entry that
// lets it publish only under its own origin.
type hostUser struct {
	name, seedFile, pub string
}

func newHostUser(t *testing.T, name string) hostUser {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	path := filepath.Join(t.TempDir(), name+".nk")
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return hostUser{name: name, seedFile: path, pub: pub}
}

// HostPermissions is the authorization of one host as README documents
// it: publish under its own origin, read the stream, make its own
// consumers; never update, purge or delete.
func hostPermissions(bucket, origin string) string {
	return fmt.Sprintf(`{
  publish: {allow: ["%[1]s.%[2]s.>", "$JS.API.STREAM.INFO.%[1]s", "$JS.API.STREAM.CREATE.%[1]s",
    "$JS.API.CONSUMER.CREATE.%[1]s.>", "$JS.API.CONSUMER.DELETE.%[1]s.>", "$JS.API.CONSUMER.MSG.NEXT.%[1]s.>"]}
  subscribe: {allow: ["_INBOX.>"]}
}`, bucket, origin)
}

func authConf(bucket string, users ...hostUser) string {
	var b strings.Builder
	b.WriteString("authorization: {\n  users: [\n")
	for _, u := range users {
		fmt.Fprintf(&b, "    {nkey: %s, permissions: %s}\n", u.pub, hostPermissions(bucket, u.name))
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// logBuf collects a link's log, for tests that look at state changes.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) count(s string) int { return strings.Count(l.String(), s) }

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
