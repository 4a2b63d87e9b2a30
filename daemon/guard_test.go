package daemon

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

func testGuard(t *testing.T, v4, v6 int) Guard {
	t.Helper()
	cfg := testConfig(t, t.TempDir(), tripwireRules, "")
	list, errs := ResolveIgnore(cfg, testHost)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return NewGuard(list, rules.Config{Bans: rules.BanPolicy{IPv4Prefix: v4, IPv6Prefix: v6}})
}

func TestResolveIgnoreNamesWhereEachComesFrom(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), tripwireRules, "")
	list, errs := ResolveIgnore(cfg, testHost)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := []Ignored{
		{pfx("127.0.0.0/8"), FromIgnoreList}, {pfx("192.0.2.10/32"), FromSelf},
		{pfx("192.0.2.1/32"), FromGateways}, {pfx("192.0.2.53/32"), FromResolvers},
	}
	if !slices.Equal(list, want) {
		t.Errorf("ResolveIgnore = %v, want %v", list, want)
	}
	list, errs = ResolveIgnore(cfg, hostWithBrokenResolvers{testHost})
	var we *WordError
	if len(errs) != 1 || !errors.As(errs[0], &we) || we.Word != FromResolvers {
		t.Fatalf("errs = %v, want one WordError for resolvers", errs)
	}
	if len(list) != 3 {
		t.Errorf("with resolvers failing: %v, want the other three", list)
	}
}

type hostWithBrokenResolvers struct{ fakeHost }

func (hostWithBrokenResolvers) Resolvers() ([]netip.Prefix, error) {
	return nil, errors.New("no resolv.conf")
}

func TestGuardManual(t *testing.T) {
	g := testGuard(t, 32, 64)
	g24 := testGuard(t, 24, 64)
	tests := []struct {
		name    string
		g       Guard
		prefix  string
		force   bool
		want    []string // keys; nil: refused
		wantErr string   // in the refusal
		wide    bool     // refused as too wide only
	}{
		{name: "address", g: g, prefix: "203.0.113.7/32", want: []string{"203.0.113.7/32"}},
		{name: "ipv6 address", g: g, prefix: "2001:db8:1::5/128", want: []string{"2001:db8:1::5/128"}},
		{name: "ipv6 ban key", g: g, prefix: "2001:db8:1::/64", want: []string{"2001:db8:1::/64"}},
		{name: "mapped", g: g, prefix: "::ffff:203.0.113.7/128", want: []string{"203.0.113.7/32"}},
		{name: "gateway", g: g, prefix: "192.0.2.1/32", wantErr: "is 192.0.2.1, this host's gateway (ignore: gateways): never banned"},
		{name: "self", g: g, prefix: "192.0.2.10/32", force: true, wantErr: "is 192.0.2.10, an address of this host (ignore: self)"},
		{name: "resolver", g: g, prefix: "192.0.2.53/32", wantErr: "this host's DNS resolver (ignore: resolvers)"},
		{name: "ignore list", g: g, prefix: "127.0.0.1/32", wantErr: "is inside 127.0.0.0/8, in the ignore list"},
		{name: "wide over gateway, forced", g: g, prefix: "192.0.2.0/24", force: true, wantErr: "covers 192.0.2.10, an address of this host"},
		{name: "too wide", g: g, prefix: "198.51.100.0/24", wantErr: "a /24 is wider than the /32 bans here (bans.ipv4_prefix); --force bans it all", wide: true},
		{name: "too wide v6", g: g, prefix: "2001:db8::/48", wantErr: "bans.ipv6_prefix", wide: true},
		{name: "too wide v6, forced", g: g, prefix: "2001:db8::/48", force: true, want: []string{"2001:db8::/48"}},
		{name: "too wide, forced", g: g, prefix: "198.51.100.0/30", force: true,
			want: []string{"198.51.100.0/32", "198.51.100.1/32", "198.51.100.2/32", "198.51.100.3/32"}},
		{name: "forced past the cap", g: g, prefix: "198.51.0.0/16", force: true, wantErr: "65536 bans of /32"},
		{name: "everything", g: g, prefix: "::/0", force: true, wantErr: "the whole address space"},
		{name: "address widened to its ban key", g: g24, prefix: "203.0.113.7/32", want: []string{"203.0.113.0/24"}},
		{name: "widened over the gateway", g: g24, prefix: "192.0.2.200/32", wantErr: "192.0.2.0/24: covers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.g.Manual(pfx(tc.prefix), tc.force)
			if tc.wantErr != "" {
				var re *RefusedError
				if err == nil || !errors.As(err, &re) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Manual(%s, %v) = %v, %v; want a refusal with %q", tc.prefix, tc.force, got, err, tc.wantErr)
				}
				if errors.Is(err, ErrTooWide) != tc.wide {
					t.Errorf("errors.Is(ErrTooWide) = %v, want %v", !tc.wide, tc.wide)
				}
				return
			}
			if err != nil {
				t.Fatalf("Manual(%s) = %v", tc.prefix, err)
			}
			var want []netip.Prefix
			for _, w := range tc.want {
				want = append(want, pfx(w))
			}
			if !slices.Equal(got, want) {
				t.Errorf("Manual(%s) = %v, want %v", tc.prefix, got, want)
			}
		})
	}
}

func TestGuardAdmissible(t *testing.T) {
	g := testGuard(t, 32, 64)
	for key, ok := range map[string]bool{
		"203.0.113.7/32": true, "2001:db8:1:2::/64": true, "2001:db8:1:3::5/128": true,
		"192.0.2.0/24": false, "::/0": false, "127.0.0.1/32": false, "192.0.2.1/32": false, "2001:db8::/48": false,
	} {
		if err := g.Admissible(pfx(key)); (err == nil) != ok {
			t.Errorf("Admissible(%s) = %v, want ok %v", key, err, ok)
		}
	}
}

// An aggregate's wider key is one the engine makes: a ban of it put back
// from saved state passes, other lengths do not.
func TestAdmissibleTakesAggregateKeys(t *testing.T) {
	g := NewGuard(nil, rules.Config{Bans: rules.BanPolicy{IPv4Prefix: 32, IPv6Prefix: 64},
		Aggregate: rules.Aggregate{IPv4Prefix: 24, IPv6Prefix: 48}})
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"203.0.113.0/24", true}, {"2001:db8:7::/48", true}, {"203.0.113.7/32", true}, {"2001:db8:7:1::/64", true},
		{"203.0.112.0/23", false}, {"2001:db8::/32", false},
	} {
		if err := g.Admissible(netip.MustParsePrefix(tc.key)); (err == nil) != tc.ok {
			t.Errorf("Admissible(%s) = %v, want ok %t", tc.key, err, tc.ok)
		}
	}
}
