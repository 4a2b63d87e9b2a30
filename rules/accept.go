package rules

import (
	"fmt"
	"strings"
)

// DefaultAcceptPrefixes returns the accept patterns used when a config
// names none: the markers with which common firewall front ends log packets
// they let through, which are never scan evidence.
//
//   - "[UFW ALLOW]", "[UFW AUDIT": UFW's allow and audit lines ("[UFW AUDIT]",
//     "[UFW AUDIT INVALID]").
//   - "*SFW2-*-ACC*": SuSEfirewall2 ("SFW2-INext-ACC-TCP",
//     "SFW2-IN-ACC-RELATED"); its drops are "SFW2-INext-DROP-DEFLT".
//   - "*-A]": EdgeOS, UniFi USG and VyOS rules with action accept
//     ("[WAN_LOCAL-10-A]", "[LAN_LOCAL-default-A]",
//     "[ipv4-INP-filter-10-A]"); drops end in "-D]", rejects in "-R]".
//   - "*-RET-*": UniFi OS, whose accepting rules return
//     ("[LAN_LOCAL-RET-2147483647]"); its drops are "[...-D-...]".
//   - "*ACCEPT": a prefix ending in ACCEPT: Proxmox VE ("ACCEPT",
//     "policy ACCEPT"), Shorewall ("Shorewall:net2fw:ACCEPT:", whose colon
//     the parser drops) and hand-written rules ("INPUT:ACCEPT:").
func DefaultAcceptPrefixes() []string {
	return []string{"[UFW ALLOW]", "[UFW AUDIT", "*SFW2-*-ACC*", "*-A]", "*-RET-*", "*ACCEPT"}
}

// acceptPattern is one compiled accept pattern. A pattern without '*'
// matches as the leading part of a prefix, as accept_prefixes always has; one
// with '*' is a glob over the whole prefix, '*' standing for any run of
// characters ("*-ACC-*" matches anywhere, "*ACCEPT" at the end).
type acceptPattern struct {
	parts      []string // the literal runs between the stars
	start, end bool     // whether parts[0] must start, and the last end, the prefix
}

// compileAccept checks and compiles accept patterns. A pattern that would
// match every prefix, or none but the empty one, is refused: it would
// silently turn off detection.
func compileAccept(patterns []string) ([]acceptPattern, error) {
	out := make([]acceptPattern, 0, len(patterns))
	for i, p := range patterns {
		if strings.Trim(p, "*") == "" {
			return nil, fmt.Errorf("accept_prefixes[%d]: %q would match every prefix", i, p)
		}
		if !strings.Contains(p, "*") {
			out = append(out, acceptPattern{parts: []string{p}, start: true})
			continue
		}
		parts := strings.Split(p, "*")
		out = append(out, acceptPattern{parts: parts, start: parts[0] != "", end: parts[len(parts)-1] != ""})
	}
	return out, nil
}

// match reports whether prefix matches the pattern. It does not allocate.
func (a *acceptPattern) match(prefix string) bool {
	parts := a.parts
	if a.start {
		if !strings.HasPrefix(prefix, parts[0]) {
			return false
		}
		prefix, parts = prefix[len(parts[0]):], parts[1:]
	}
	if a.end && len(parts) > 0 {
		last := parts[len(parts)-1]
		if !strings.HasSuffix(prefix, last) {
			return false
		}
		prefix, parts = prefix[:len(prefix)-len(last)], parts[:len(parts)-1]
	}
	for _, p := range parts {
		i := strings.Index(prefix, p)
		if i < 0 {
			return false
		}
		prefix = prefix[i+len(p):]
	}
	return true
}

// CheckAcceptPrefixes reports the first accept pattern NewEngine would
// refuse, so a config loader can name it with its place in the file.
func CheckAcceptPrefixes(patterns []string) error {
	_, err := compileAccept(patterns)
	return err
}
