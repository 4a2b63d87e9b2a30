package actions

import (
	"fmt"
	"strings"
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

// ownComment reports whether an element's comment marks it as the
// daemon's, its own ban or one it received: neither is provisional.
func ownComment(c string) bool {
	return c == BanComment || strings.HasPrefix(c, fleetCommentPrefix)
}
