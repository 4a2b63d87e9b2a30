package fleet

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// operatorConf is a server in operator (JWT) mode, as nsc sets one up: an
// operator, a system account, and an account with JetStream whose users
// are given. It returns the config text and writes each user's .creds
// file, with the permissions README gives a host.
func operatorConf(t *testing.T, origins ...string) (conf string, creds map[string]string) {
	t.Helper()
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	ojwt, err := oc.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	account := func(js bool) (nkeys.KeyPair, string, string) {
		akp, _ := nkeys.CreateAccount()
		apub, _ := akp.PublicKey()
		ac := jwt.NewAccountClaims(apub)
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		ajwt, err := ac.Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		return akp, apub, ajwt
	}
	_, spub, sjwt := account(false)
	akp, apub, ajwt := account(true)
	creds = map[string]string{}
	dir := t.TempDir()
	for _, o := range origins {
		ukp, _ := nkeys.CreateUser()
		upub, _ := ukp.PublicKey()
		uc := jwt.NewUserClaims(upub)
		uc.Pub.Allow.Add(DefaultBucket+"."+o+".>", "$JS.API.STREAM.INFO."+DefaultBucket, "$JS.API.STREAM.CREATE."+DefaultBucket,
			"$JS.API.CONSUMER.CREATE."+DefaultBucket+".>", "$JS.API.CONSUMER.DELETE."+DefaultBucket+".>", "$JS.API.CONSUMER.MSG.NEXT."+DefaultBucket+".>")
		uc.Sub.Allow.Add("_INBOX.>")
		ujwt, err := uc.Encode(akp)
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := ukp.Seed()
		data, err := jwt.FormatUserConfig(ujwt, seed)
		if err != nil {
			t.Fatal(err)
		}
		creds[o] = filepath.Join(dir, o+".creds")
		if err := os.WriteFile(creds[o], data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf = fmt.Sprintf("operator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: {\n  %s: %s\n  %s: %s\n}\n",
		ojwt, spub, spub, sjwt, apub, ajwt)
	return conf, creds
}

// TestCredsFile: a NATS credentials file (a user JWT and its seed, as nsc
// writes it) with the permissions README gives: the host publishes and
// receives under its own origin, and not under another's.
func TestCredsFile(t *testing.T) {
	conf, creds := operatorConf(t, "web1", "web2")
	srv := startServer(t, conf)
	a := dial(t, Config{Servers: []string{srv.url()}, Name: "web1", Creds: creds["web1"]})
	b := dial(t, Config{Servers: []string{srv.url()}, Name: "web2", Creds: creds["web2"]})
	rb := receive(t, b)
	pub := a.Publisher()
	defer pub.Close()
	pub.Act(banDecision("203.0.113.1/32", time.Hour))
	if m := rb.wait(t, 1, 10*time.Second)[0]; m.Origin != "web1" || m.Key.String() != "203.0.113.1/32" {
		t.Errorf("received %+v", m)
	}
	// web1's credentials under web2's name: refused by the server.
	var log logBuf
	x := dial(t, Config{Servers: []string{srv.url()}, Name: "web2", Creds: creds["web1"], Log: newLogger(&log)})
	px := x.Publisher()
	px.Act(banDecision("203.0.113.2/32", time.Hour))
	time.Sleep(2 * time.Second)
	px.Close()
	if got := rb.got(); len(got) != 1 {
		t.Errorf("web2 received %d messages, want only web1's own", len(got))
	}
	if s := x.Stats(); s.Published != 0 {
		t.Errorf("the impersonator published: %+v", s)
	}
}
