package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/fleet"
)

// Fleet is fleet mode: bans shared with the other hosts through NATS
// JetStream. Nil in Config when the file has no fleet section.
type Fleet struct {
	// Servers are the NATS server URLs (nats:// or tls://).
	Servers []string
	// Name is this host's origin name.
	Name string
	// Creds is a NATS credentials file; "" for none.
	Creds string
	// TLS holds the certificate files; empty for none.
	TLS fleet.TLSFiles
	// Bucket names the JetStream stream.
	Bucket string
	// Publish sends this host's own bans to the fleet; Apply applies the
	// fleet's bans here.
	Publish, Apply bool
	// AcceptFrom lists the origins whose bans are applied; empty means
	// every origin.
	AcceptFrom []string
	// MaxRemotePerMinute is the remote valve: remote bans applied per
	// minute, counted by the time the server stored them; 0 turns it off.
	MaxRemotePerMinute int
	// MaxRemoteBan caps a remote ban's remaining time here.
	MaxRemoteBan time.Duration
	// MaxRemoteActive caps the remote bans held at once.
	MaxRemoteActive int
}

// Defaults of the fleet section.
const (
	DefaultMaxRemotePerMinute = 600
	DefaultMaxRemoteBan       = 24 * time.Hour
	DefaultMaxRemoteActive    = 100000
)

type rawFleet struct {
	Servers            list          `yaml:"servers"`
	Name               field[string] `yaml:"name"`
	Creds              field[string] `yaml:"creds"`
	TLS                *rawFleetTLS  `yaml:"tls"`
	Bucket             field[string] `yaml:"bucket"`
	Publish            field[bool]   `yaml:"publish"`
	Apply              field[bool]   `yaml:"apply"`
	AcceptFrom         list          `yaml:"accept_from"`
	MaxRemotePerMinute field[int]    `yaml:"max_remote_per_minute"`
	MaxRemoteBan       field[string] `yaml:"max_remote_ban"`
	MaxRemoteActive    field[int]    `yaml:"max_remote_active"`
}

type rawFleetTLS struct {
	CA   field[string] `yaml:"ca"`
	Cert field[string] `yaml:"cert"`
	Key  field[string] `yaml:"key"`
}

// shortHostname is the default origin name: the hostname up to its first
// dot, which is one subject token.
func shortHostname() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", err
	}
	h, _, _ = strings.Cut(h, ".")
	return h, nil
}

func (l *loader) fleet(raw *rawConfig, cfg *Config) {
	r := raw.Fleet
	if r == nil {
		return
	}
	f := &Fleet{
		Bucket: fleet.DefaultBucket, Publish: true, Apply: true,
		MaxRemotePerMinute: DefaultMaxRemotePerMinute, MaxRemoteBan: DefaultMaxRemoteBan, MaxRemoteActive: DefaultMaxRemoteActive,
	}
	for i, s := range r.Servers.Items {
		if err := fleet.CheckServerURL(s.V); err != nil {
			l.add(s.Line, s.Col, fmt.Sprintf("fleet.servers[%d]", i), "%v", err)
		}
		f.Servers = append(f.Servers, s.V)
	}
	if len(f.Servers) == 0 {
		l.addAt("fleet", "servers: list at least one NATS server URL, such as [nats://192.0.2.10:4222]")
	}
	if r.Name.Set {
		if err := fleet.CheckName(r.Name.V); err != nil {
			l.add(r.Name.Line, r.Name.Col, "fleet.name", "%v", err)
		}
		f.Name = r.Name.V
	} else {
		h, err := shortHostname()
		if err == nil {
			err = fleet.CheckName(h)
		}
		if err != nil {
			l.addAt("fleet", "name: the hostname cannot be the origin name (%v): set fleet.name", err)
		}
		f.Name = h
	}
	path := func(key string, v field[string]) string {
		if v.V != "" && !strings.HasPrefix(v.V, "/") {
			l.add(v.Line, v.Col, key, "%q: want an absolute path", v.V)
		}
		return v.V
	}
	f.Creds = path("fleet.creds", r.Creds)
	if t := r.TLS; t != nil {
		f.TLS = fleet.TLSFiles{CA: path("fleet.tls.ca", t.CA), Cert: path("fleet.tls.cert", t.Cert), Key: path("fleet.tls.key", t.Key)}
		if (f.TLS.Cert == "") != (f.TLS.Key == "") {
			l.addAt("fleet.tls", "cert and key go together: set both or neither")
		}
	}
	if r.Bucket.Set {
		if err := fleet.CheckBucket(r.Bucket.V); err != nil {
			l.add(r.Bucket.Line, r.Bucket.Col, "fleet.bucket", "%v", err)
		}
		f.Bucket = r.Bucket.V
	}
	if r.Publish.Set {
		f.Publish = r.Publish.V
	}
	if r.Apply.Set {
		f.Apply = r.Apply.V
	}
	for i, a := range r.AcceptFrom.Items {
		if err := fleet.CheckName(a.V); err != nil {
			l.add(a.Line, a.Col, fmt.Sprintf("fleet.accept_from[%d]", i), "%v", err)
		}
		f.AcceptFrom = append(f.AcceptFrom, a.V)
	}
	if m := r.MaxRemotePerMinute; m.Set {
		if m.V < 0 || m.V > 1000000 {
			l.add(m.Line, m.Col, "fleet.max_remote_per_minute", "%d out of range 0-1000000 (0 turns the valve off)", m.V)
		}
		f.MaxRemotePerMinute = m.V
	}
	if m := r.MaxRemoteBan; m.Set {
		if d, ok := l.duration("fleet.max_remote_ban", m.V); ok {
			if d < time.Second {
				l.addAt("fleet.max_remote_ban", "%s: want 1s or more", m.V)
			}
			f.MaxRemoteBan = d
		}
	}
	if m := r.MaxRemoteActive; m.Set {
		if m.V < 1 || m.V > 1<<24 {
			l.add(m.Line, m.Col, "fleet.max_remote_active", "%d out of range 1-16777216", m.V)
		}
		f.MaxRemoteActive = m.V
	}
	if !f.Publish && !f.Apply {
		l.addAt("fleet", "publish and apply are both false: remove the fleet section instead")
	}
	cfg.Fleet = f
}
