package config

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sentrynflog "github.com/sentry-nflog/sentry-nflog"
)

func TestSummary(t *testing.T) {
	ref, err := Load("sentry.yaml", sentrynflog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ref.Summary(), "7 rules, 1 NFLOG groups, 0 files, ignore 2 prefixes + self, gateways, resolvers"; got != want {
		t.Errorf("shipped sentry.yaml:\n got %q\nwant %q", got, want)
	}
	path := filepath.Join("..", "testdata", "config", "valid", "fleet.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fc, err := Load(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fc.Summary(), "fleet as web-1_a (2 servers, stream sentry_bans, publish true, apply true)"; !strings.HasSuffix(got, want) {
		t.Errorf("fleet.yaml: %q, want it to end with %q", got, want)
	}
	for _, tc := range []struct {
		ig   Ignore
		want string
	}{
		{Ignore{}, ""},
		{Ignore{Gateways: true}, "gateways"},
		{Ignore{Self: true, Resolvers: true}, "self, resolvers"},
	} {
		if got := tc.ig.Words(); got != tc.want {
			t.Errorf("%+v: Words %q, want %q", tc.ig, got, tc.want)
		}
	}
}

func TestLoggerAndLink(t *testing.T) {
	for _, tc := range []struct {
		log  Log
		want string
	}{
		{Log{Format: "json", Level: slog.LevelInfo}, `"msg":"hello"`},
		{Log{Format: "text", Level: slog.LevelInfo}, "msg=hello"},
		{Log{Format: "text", Level: slog.LevelWarn}, ""},
	} {
		var b bytes.Buffer
		tc.log.Logger(&b).Info("hello")
		if tc.want == "" && b.Len() != 0 || !strings.Contains(b.String(), tc.want) {
			t.Errorf("%+v: %q, want %q", tc.log, b.String(), tc.want)
		}
	}
	f := &Fleet{Servers: []string{"nats://a:4222"}, Name: "web-1", Creds: "/c", Bucket: "b", Publish: true}
	l := f.Link(nil)
	if len(l.Servers) != 1 || l.Servers[0] != "nats://a:4222" || l.Name != "web-1" || l.Creds != "/c" || l.Bucket != "b" || l.Log != nil {
		t.Errorf("Link: %+v", l)
	}
}
