package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Timing of the link. The client's defaults (a ping every 2 minutes, a
// consumer heartbeat every 5 s) would let a silent partition go unseen
// for minutes: here it is noticed within about 3 s.
const (
	pingInterval   = time.Second
	maxPingsOut    = 2
	heartbeat      = time.Second
	reconnectWait  = 500 * time.Millisecond
	dialTimeout    = 2 * time.Second
	requestTimeout = 5 * time.Second
	// dupWindow is the stream's deduplication window: a publish retried
	// with the same message id within it is stored once.
	dupWindow = 2 * time.Minute
)

// TLSFiles are the PEM files of a TLS connection; empty fields are not
// used (a tls:// URL alone trusts the system's roots).
type TLSFiles struct {
	CA, Cert, Key string
}

// Config is what Dial needs.
type Config struct {
	// Servers are the URLs of the NATS servers (nats://host:4222,
	// tls://host:4222); the client connects to one at a time.
	Servers []string
	// Name is this host's origin name (CheckName).
	Name string
	// Creds is a NATS credentials file (a user JWT and its nkey seed, as
	// nsc writes them) or a file holding only an nkey seed; "" for none.
	Creds string
	// TLS configures certificates; a tls:// URL without it uses the
	// system's roots.
	TLS TLSFiles
	// Bucket names the stream (DefaultBucket when empty).
	Bucket string
	// Log receives the link's state changes; nil discards them.
	Log *slog.Logger
}

// Link is one host's connection to the fleet: one outbound connection to
// one of the servers at a time, never a listening socket. Dial makes it;
// Publisher, Receive, Active and Pardon use it; Close ends it. Its methods
// are safe for concurrent use.
type Link struct {
	cfg Config
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream

	states states

	mu       sync.Mutex
	streamOK bool // the stream was found or made with our settings
	// up is closed at the next connection or reconnection, then
	// replaced: the publisher retries and the receiver resumes at once.
	up chan struct{}

	published, dropped, received, invalid atomic.Uint64
}

// Stats are a link's cumulative counters.
type Stats struct {
	// Connected says whether the link is connected to a server now.
	Connected bool
	// Published counts bans and pardons stored in the stream;
	// PublishDropped those given up (expired before a server took them,
	// the queue full, or still queued when the daemon stopped).
	Published, PublishDropped uint64
	// Received counts valid messages of other hosts handed to the
	// daemon; Invalid those refused before that (undecodable, or an
	// origin or key that is not the subject's).
	Received, Invalid uint64
}

// Dial checks cfg and starts connecting. It returns without waiting for a
// server: an unreachable one is logged and retried in the background, and
// publishes wait in the Publisher's queue meanwhile. It fails only on a
// config it cannot use (an unreadable credentials file, a bad URL).
func Dial(cfg Config) (*Link, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if err := CheckBucket(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if err := CheckName(cfg.Name); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if len(cfg.Servers) == 0 {
		return nil, errors.New("fleet: no server")
	}
	for _, s := range cfg.Servers {
		if err := CheckServerURL(s); err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	l := &Link{cfg: cfg, log: cfg.Log, up: make(chan struct{})}
	l.states.log = cfg.Log
	opts, err := l.options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(strings.Join(cfg.Servers, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("fleet: connect: %w", err)
	}
	l.nc = nc
	if l.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if nc.IsConnected() {
		l.states.set("connection", "up", slog.LevelInfo, "fleet: connected", "server", redact(nc.ConnectedUrl()), "name", cfg.Name)
	} else {
		l.states.set("connection", "down", slog.LevelWarn, "fleet: no server reachable yet; banning locally, publishing once connected",
			"servers", strings.Join(redactAll(cfg.Servers), ","), "name", cfg.Name)
	}
	return l, nil
}

// CheckServerURL returns an error unless s is a nats:// or tls:// URL
// with a host.
func CheckServerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" || u.Path != "" && u.Path != "/" {
		return fmt.Errorf("%q: want a nats:// or tls:// URL such as nats://192.0.2.10:4222", redact(s))
	}
	return nil
}

// options are the client's options: fast failure detection, reconnection
// forever, no reconnect buffer (the Publisher's queue is the only one, so
// a publish never waits in two places), credentials and TLS.
func (l *Link) options() ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name("sentry-nflog " + l.cfg.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.Timeout(dialTimeout),
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(nc *nats.Conn) {
			l.states.set("connection", "up", slog.LevelInfo, "fleet: connected", "server", redact(nc.ConnectedUrl()))
			l.signalUp()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			l.states.set("connection", "up", slog.LevelInfo, "fleet: reconnected", "server", redact(nc.ConnectedUrl()))
			l.signalUp()
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // Close: not a failure
			}
			args := []any{}
			if err != nil {
				args = append(args, "err", err)
			}
			l.states.set("connection", "down", slog.LevelWarn, "fleet: disconnected; banning locally, publishing once reconnected", args...)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			// Asynchronous errors (a permissions violation, a slow
			// consumer) repeat per message: logged when they change.
			l.states.set("async", err.Error(), slog.LevelError, "fleet: server reported an error", "err", err)
		}),
	}
	if c := l.cfg.Creds; c != "" {
		data, err := os.ReadFile(c)
		if err != nil {
			return nil, fmt.Errorf("fleet: creds: %w", err)
		}
		if bytes.Contains(data, []byte("BEGIN NATS USER JWT")) {
			opts = append(opts, nats.UserCredentials(c))
		} else {
			o, err := nats.NkeyOptionFromSeed(c)
			if err != nil {
				return nil, fmt.Errorf("fleet: creds %s: neither a credentials file nor an nkey seed: %w", c, err)
			}
			opts = append(opts, o)
		}
	}
	if t := l.cfg.TLS; t.CA != "" || t.Cert != "" {
		if t.CA != "" {
			opts = append(opts, nats.RootCAs(t.CA))
		}
		if t.Cert != "" {
			opts = append(opts, nats.ClientCert(t.Cert, t.Key))
		}
	}
	return opts, nil
}

// Name returns this host's origin name.
func (l *Link) Name() string { return l.cfg.Name }

// Stats returns the link's counters.
func (l *Link) Stats() Stats {
	return Stats{
		Connected: l.nc.IsConnected(), Published: l.published.Load(), PublishDropped: l.dropped.Load(),
		Received: l.received.Load(), Invalid: l.invalid.Load(),
	}
}

// Close closes the connection. Stop the Publisher and Receive first.
func (l *Link) Close() error {
	l.nc.Close()
	return nil
}

// ensureStream finds the stream or creates it: subjects "<bucket>.>", the
// last message per subject kept, per-message TTLs allowed, file storage,
// and three replicas when the server is part of a cluster of three or
// more. A stream that exists without our settings is updated, as far as
// the credentials allow. Success is remembered until forgetStream.
func (l *Link) ensureStream(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.streamOK {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	b := l.cfg.Bucket
	s, err := l.js.Stream(ctx, b)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		cfg := l.streamConfig()
		_, err = l.js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // another host made it first
		} else if err == nil {
			l.log.Info("fleet: created the stream", "stream", b, "subjects", cfg.Subjects[0], "replicas", cfg.Replicas)
		}
	case err == nil:
		c := s.CachedInfo().Config
		if !c.AllowMsgTTL || c.MaxMsgsPerSubject != 1 || !slices.Contains(c.Subjects, b+".>") {
			c.AllowMsgTTL, c.MaxMsgsPerSubject = true, 1
			if !slices.Contains(c.Subjects, b+".>") {
				c.Subjects = append(c.Subjects, b+".>")
			}
			if _, err = l.js.UpdateStream(ctx, c); err == nil {
				l.log.Warn("fleet: updated the stream to keep one message per subject with per-message TTLs", "stream", b)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("fleet: stream %s: %w", b, err)
	}
	l.streamOK = true
	return nil
}

// nextUp returns a channel closed at the next connection or
// reconnection.
func (l *Link) nextUp() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.up
}

func (l *Link) signalUp() {
	l.mu.Lock()
	close(l.up)
	l.up = make(chan struct{})
	l.mu.Unlock()
}

// forgetStream makes the next ensureStream look again (after a publish
// found no stream: an administrator deleted it).
func (l *Link) forgetStream() {
	l.mu.Lock()
	l.streamOK = false
	l.mu.Unlock()
}

func (l *Link) streamConfig() jetstream.StreamConfig {
	replicas := 1
	if l.nc.ConnectedClusterName() != "" && len(l.nc.Servers()) >= 3 {
		replicas = 3
	}
	return jetstream.StreamConfig{
		Name:              l.cfg.Bucket,
		Description:       "sentry-nflog fleet: the last ban or pardon of each (origin, key), expiring with it",
		Subjects:          []string{l.cfg.Bucket + ".>"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: 1,
		AllowMsgTTL:       true,
		Duplicates:        dupWindow,
		Replicas:          replicas,
	}
}

// redact hides a password in a URL for the log.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxx")
	}
	return u.String()
}

func redactAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = redact(s)
	}
	return out
}

// states logs a line when a topic's state changes, and nothing while it
// stays: a server down for an hour is two lines, not one per message.
type states struct {
	mu  sync.Mutex
	log *slog.Logger
	cur map[string]string
}

// set records topic's state and logs msg if it changed.
func (s *states) set(topic, state string, level slog.Level, msg string, args ...any) {
	s.mu.Lock()
	if s.cur == nil {
		s.cur = map[string]string{}
	}
	if s.cur[topic] == state {
		s.mu.Unlock()
		return
	}
	s.cur[topic] = state
	s.mu.Unlock()
	s.log.Log(context.Background(), level, msg, args...)
}

// init sets topic's state without logging, unless it has one.
func (s *states) init(topic, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		s.cur = map[string]string{}
	}
	if _, ok := s.cur[topic]; !ok {
		s.cur[topic] = state
	}
}
