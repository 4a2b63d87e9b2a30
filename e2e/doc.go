// Package e2e holds the end-to-end tests: they build the real binary,
// create network namespaces, load the printed logging rules into the
// victim's firewall with nft, run `sentry-nflog run` there and scan it from
// the attacker namespace. They need root, ip(8) and nft(8); without them
// they skip with the reason, and with CI=true that is a failure.
package e2e
