package fleet

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestKeyToken(t *testing.T) {
	for _, c := range []struct{ key, want string }{
		{"203.0.113.7/32", "203-0-113-7_32"},
		{"198.51.100.0/24", "198-51-100-0_24"},
		{"2001:db8:bad:1::/64", "2001-db8-bad-1--_64"},
		{"2001:db8::7/128", "2001-db8--7_128"},
		{"1::2:3/128", "1--2-3_128"},
		{"::/0", "--_0"},
	} {
		if got := KeyToken(netip.MustParsePrefix(c.key)); got != c.want {
			t.Errorf("KeyToken(%s) = %s, want %s", c.key, got, c.want)
		}
		if strings.ContainsAny(KeyToken(netip.MustParsePrefix(c.key)), ".*> \t") {
			t.Errorf("token of %s is not one subject token", c.key)
		}
	}
}

func testMessage() Message {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	return Message{
		Kind: KindBan, Origin: "web-1", Key: netip.MustParsePrefix("203.0.113.7/32"), Address: netip.MustParseAddr("203.0.113.7"),
		Rule: "tcp-portscan", Ban: time.Hour, Decided: at, Until: at.Add(time.Hour), Offence: 2, Ports: []uint16{20, 21}, Hits: 5,
	}
}

func TestMessageRoundTrip(t *testing.T) {
	m := testMessage()
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode("sentry_bans", "sentry_bans.web-1.203-0-113-7_32", data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != m.Kind || got.Origin != m.Origin || got.Key != m.Key || got.Address != m.Address || got.Rule != m.Rule ||
		got.Ban != m.Ban || !got.Decided.Equal(m.Decided) || !got.Until.Equal(m.Until) || got.Offence != 2 || got.Hits != 5 ||
		len(got.Ports) != 2 || got.Ports[1] != 21 {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
	}
	p := Message{Kind: KindPardon, Origin: "admin", Key: netip.MustParsePrefix("2001:db8::/64"), Decided: m.Decided, Until: m.Until}
	data, err = p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Decode("b", "b.admin.2001-db8--_64", data); err != nil || got.Kind != KindPardon {
		t.Errorf("pardon: %+v %v", got, err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := func() Message { return testMessage() }
	enc := func(m Message) string {
		// Encode checks too: bypass it to forge what a broken or hostile
		// publisher could send.
		w := `{"v":1,"kind":"` + m.Kind.String() + `","origin":"` + m.Origin + `","key":"` + m.Key.String() +
			`","ban_ms":3600000,"decided":"2026-03-01T12:00:00Z","until":"2026-03-01T13:00:00Z"}`
		return w
	}
	subj := "sentry_bans.web-1.203-0-113-7_32"
	for _, c := range []struct {
		name, subject, data string
	}{
		{"not json", subj, "ban 203.0.113.7"},
		{"other version", subj, strings.Replace(enc(good()), `"v":1`, `"v":2`, 1)},
		{"unknown kind", subj, strings.Replace(enc(good()), `"ban"`, `"drop"`, 1)},
		{"origin is not the subject's", "sentry_bans.web-2.203-0-113-7_32", enc(good())},
		{"key is not the subject's", "sentry_bans.web-1.203-0-113-8_32", enc(good())},
		{"other bucket", "other.web-1.203-0-113-7_32", enc(good())},
		{"unmasked key", "sentry_bans.web-1.203-0-113-7_24", strings.Replace(enc(good()), "203.0.113.7/32", "203.0.113.7/24", 1)},
		{"mapped key", subj, strings.Replace(enc(good()), "203.0.113.7/32", "::ffff:203.0.113.7/128", 1)},
		{"bad origin", "sentry_bans.web 1.203-0-113-7_32", strings.Replace(enc(good()), `"web-1"`, `"web 1"`, 1)},
		{"until before decided", subj, strings.Replace(enc(good()), "13:00:00Z", "11:00:00Z", 1)},
		{"no ban length", subj, strings.Replace(enc(good()), `"ban_ms":3600000`, `"ban_ms":0`, 1)},
		{"too big", subj, enc(good()) + strings.Repeat(" ", maxMessageSize)},
		{"too many ports", subj, strings.Replace(enc(good()), `"v":1`, `"v":1,"ports":[`+strings.Repeat("1,", maxPorts)+`1]`, 1)},
		{"address outside key", subj, strings.Replace(enc(good()), `"v":1`, `"v":1,"address":"192.0.2.1"`, 1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Decode("sentry_bans", c.subject, []byte(c.data)); !errors.Is(err, ErrInvalid) {
				t.Errorf("Decode = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := Decode("sentry_bans", subj, []byte(enc(good()))); err != nil {
		t.Errorf("the unforged text: %v", err)
	}
}

func TestTTLOf(t *testing.T) {
	for _, c := range []struct{ left, want time.Duration }{
		{10 * time.Second, 10 * time.Second},
		{9500 * time.Millisecond, 10 * time.Second},
		{time.Second + time.Nanosecond, 2 * time.Second},
		{time.Second, time.Second},
		{time.Millisecond, time.Second},
	} {
		if got := ttlOf(c.left); got != c.want {
			t.Errorf("ttlOf(%v) = %v, want %v", c.left, got, c.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	m := testMessage()
	data, _ := m.Encode()
	f.Add("sentry_bans.web-1.203-0-113-7_32", data)
	f.Add("sentry_bans.x.2001-db8--_64", []byte(`{"v":1,"kind":"pardon","origin":"x","key":"2001:db8::/64","decided":"2026-03-01T12:00:00Z","until":"2026-03-01T13:00:00Z"}`))
	f.Add("a.b.c", []byte(`{}`))
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		m, err := Decode("sentry_bans", subject, data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// What decodes is what one can encode again, on its subject.
		again, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if _, err := Decode("sentry_bans", Subject("sentry_bans", m.Origin, m.Key), again); err != nil {
			t.Fatalf("re-encoded message refused: %v", err)
		}
	})
}
