package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	sentrynflog "github.com/sentry-nflog/sentry-nflog"
	"github.com/sentry-nflog/sentry-nflog/fleet"
)

func TestFleetOffByDefault(t *testing.T) {
	cfg, err := Load("sentry.yaml", sentrynflog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Fleet != nil {
		t.Errorf("the shipped config has fleet mode on: %+v", cfg.Fleet)
	}
}

func TestFleetDefaults(t *testing.T) {
	cfg, err := Load("t.yaml", []byte(`
rules: [{name: x, threshold: {hits: 1}, ban: 1h}]
fleet: {servers: [nats://192.0.2.10:4222]}
`))
	if err != nil {
		t.Fatal(err)
	}
	host, err := shortHostname()
	if err != nil {
		t.Fatal(err)
	}
	want := &Fleet{
		Servers: []string{"nats://192.0.2.10:4222"}, Name: host, Bucket: fleet.DefaultBucket, Publish: true, Apply: true,
		MaxRemotePerMinute: DefaultMaxRemotePerMinute, MaxRemoteBan: DefaultMaxRemoteBan, MaxRemoteActive: DefaultMaxRemoteActive,
	}
	if !reflect.DeepEqual(cfg.Fleet, want) {
		t.Errorf("fleet = %+v, want %+v", cfg.Fleet, want)
	}
}

// TestFleetDocumentedExample parses the commented fleet section of the
// shipped sentry.yaml, uncommented: the documentation is a valid config
// whose values are the defaults it names.
func TestFleetDocumentedExample(t *testing.T) {
	var block []string
	in := false
	for _, line := range strings.Split(string(sentrynflog.DefaultConfig()), "\n") {
		switch {
		case line == "# fleet:":
			in = true
		case in && !strings.HasPrefix(line, "#"):
			in = false
		}
		if in {
			block = append(block, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
		}
	}
	if len(block) < 10 {
		t.Fatalf("no commented fleet section in sentry.yaml (%d lines)", len(block))
	}
	doc := "rules: [{name: x, threshold: {hits: 1}, ban: 1h}]\n" + strings.Join(block, "\n") + "\n"
	cfg, err := Load("sentry.yaml#fleet", []byte(doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	f := cfg.Fleet
	if f == nil || f.Name != "web1" || f.Bucket != fleet.DefaultBucket || !f.Publish || !f.Apply || len(f.AcceptFrom) != 0 ||
		f.MaxRemotePerMinute != DefaultMaxRemotePerMinute || f.MaxRemoteBan != DefaultMaxRemoteBan || f.MaxRemoteActive != DefaultMaxRemoteActive ||
		f.TLS.CA == "" || f.Creds == "" {
		t.Errorf("documented fleet section = %+v", f)
	}
}

func TestFleetValues(t *testing.T) {
	cfg, err := LoadFile("../testdata/config/valid/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Fleet
	if f.Name != "web-1_a" || len(f.Servers) != 2 || f.MaxRemoteBan != 7*24*time.Hour || f.MaxRemotePerMinute != 100 ||
		f.MaxRemoteActive != 5000 || !reflect.DeepEqual(f.AcceptFrom, []string{"web-2", "web3"}) || f.TLS.Key != "/etc/sentry-nflog/c.key" {
		t.Errorf("fleet = %+v", f)
	}
}
