package hostinfo

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	v4, err := ParseRoute(read(t, "route"))
	if err != nil {
		t.Fatal(err)
	}
	v6, err := ParseIPv6Route(read(t, "ipv6_route"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		got  []netip.Prefix
		want string
	}{
		{"route", v4, "[10.0.2.1/32 192.168.99.1/32]"},
		{"ipv6_route", v6, "[fe80::222:33ff:fe44:5566/128]"},
		{"resolv.conf", ParseResolvConf(read(t, "resolv.conf")), "[10.0.2.3/32 2001:db8::53/128 fe80::1/128]"},
	} {
		if got := fmt.Sprint(tc.got); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestResolversBehindStub(t *testing.T) {
	p := Paths{ResolvConf: []string{"testdata/resolv-stub.conf", "testdata/resolv.conf"}}
	got, err := p.Resolvers()
	if err != nil {
		t.Fatal(err)
	}
	if want := "[127.0.0.53/32 10.0.2.3/32 2001:db8::53/128 fe80::1/128]"; fmt.Sprint(got) != want {
		t.Errorf("got %v, want %s", got, want)
	}
	p = Paths{ResolvConf: []string{"testdata/resolv.conf", "testdata/resolv-stub.conf"}}
	if got, _ := p.Resolvers(); len(got) != 3 {
		t.Errorf("a real resolver first: got %v, want only its 3", got)
	}
	if _, err := (Paths{ResolvConf: []string{"testdata/none"}}).Resolvers(); err == nil {
		t.Error("no resolv.conf: no error")
	}
}

func TestGatewaysFromProc(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(dir+"/net", 0o755)
	os.WriteFile(dir+"/net/route", read(t, "route"), 0o644)
	os.WriteFile(dir+"/net/ipv6_route", read(t, "ipv6_route"), 0o644)
	got, err := Paths{Proc: dir}.Gateways()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Errorf("got %v, want 3 gateways", got)
	}
}

func TestSelfHasLoopback(t *testing.T) {
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range self {
		if p.Addr().IsLoopback() && p.IsSingleIP() {
			return
		}
	}
	t.Errorf("Self() = %v: no loopback address", self)
}
