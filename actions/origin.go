package actions

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// OriginFleet begins the origin of a ban received from the fleet:
// "fleet:<origin>", where origin names the host that decided it.
const OriginFleet = "fleet:"

// maxCommentLen is the longest element comment nft(8) handles (its
// NFTNL_UDATA_COMMENT_MAXLEN); the kernel itself takes 256 bytes of user
// data.
const maxCommentLen = 128

// fleetCommentPrefix begins the comment of a remote ban's element: ours
// (BanComment), and where it came from.
const fleetCommentPrefix = BanComment + " " + OriginFleet

// FleetComment is the comment on the element of a ban received from
// origin: "sentry-nflog fleet:<origin>". The element stays the daemon's
// (never taken for a provisional first-strike ban) and `list` shows its
// origin, across restarts.
func FleetComment(origin string) string { return fleetCommentPrefix + origin }

// checkOrigin refuses an origin that would not round-trip through an
// element comment.
func checkOrigin(origin string) error {
	if origin == "" || len(FleetComment(origin)) > maxCommentLen || strings.ContainsAny(origin, " \x00") {
		return fmt.Errorf("nftables: origin %q: want 1-%d characters without spaces", origin, maxCommentLen-len(fleetCommentPrefix))
	}
	return nil
}

// fleetOrigin returns "fleet:<origin>" for the comment of a remote ban's
// element.
func fleetOrigin(comment string) (string, bool) {
	o, ok := strings.CutPrefix(comment, fleetCommentPrefix)
	if !ok || o == "" {
		return "", false
	}
	return OriginFleet + o, true
}

// BlockComment is the comment on the element of a manual ban made with
// `sentry-nflog block` (BanManual). Such an element is sentry-nflog's,
// unlike one an administrator added with nft: the daemon puts it back
// after a flush or a reboot (from the record `block` keeps in state_dir)
// and `unblock` lifts it.
const BlockComment = BanComment + " manual"

// OriginBlock is the Origin of a manual ban made with `sentry-nflog block`
// (an element with BlockComment). `list` shows it as manual, with its
// reason; unlike OriginManual it is sentry-nflog's to restore and lift.
const OriginBlock = "block"

// ownComment reports whether an element's comment marks it as
// sentry-nflog's: the daemon's own ban, one it received, or a manual ban
// made with `block`. None is provisional, none is an administrator's.
func ownComment(c string) bool {
	return c == BanComment || c == BlockComment || strings.HasPrefix(c, fleetCommentPrefix)
}

// commentOrigin returns the Origin an element's comment says, false for
// a comment that is none of sentry-nflog's.
func commentOrigin(c string) (string, bool) {
	switch c {
	case BanComment:
		return OriginDaemon, true
	case BlockComment:
		return OriginBlock, true
	}
	return fleetOrigin(c)
}

// takesOver reports whether a ban commented comment replaces an element of
// the same key commented old even when old lasts as long or longer: a
// manual ban takes over the daemon's and the fleet's elements (with the
// longer of the two times), so `list` shows it as manual.
func takesOver(comment, old string) bool {
	return comment == BlockComment && old != BlockComment
}

// RemoteBan is one ban of Table.BanFromMany: BanFrom's arguments.
type RemoteBan struct {
	Key     netip.Prefix
	Timeout time.Duration
	Origin  string
}

// KeyBan is one ban of Table.BanMany: Ban's arguments.
type KeyBan struct {
	Key     netip.Prefix
	Timeout time.Duration
}
