// Package firewall writes the logging rules an administrator adds to the
// host's own firewall so that probes of unused ports reach sentry-nflog's
// NFLOG group: nft rules, or iptables and ip6tables commands, with or
// without the explanation of where they go. `sentry-nflog firewall` prints
// them; the end-to-end tests and the demo install what that command
// prints, so the rules tested are the rules shipped.
//
// It only writes text. sentry-nflog never installs these rules itself
// (advanced mode, in package actions, logs from a chain of its own table
// instead); the rules only log, and the administrator's chain still
// decides each packet's fate.
package firewall
