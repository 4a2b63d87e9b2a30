// Package packaging holds the Debian packaging of sentry-nflog and its
// test; it has no Go code of its own.
//
// `make deb` runs deb.sh, which builds the binary, has it write its man
// page and shell completions from its own help, and packs them with the
// configuration (a conffile), the systemd unit (paths in /usr/bin), the
// fleet drop-in as an example and the maintainer scripts in deb/ using
// nfpm, pinned in nfpm.mod apart from go.mod so that it never changes the
// daemon's dependencies.
//
// The test builds the package and checks it as Debian's tools see it:
// dpkg-deb for the control fields, contents and conffiles, lintian for
// policy, dpkg --unpack into a throwaway root for where the files land,
// and the maintainer scripts run against stubs of the systemd helpers.
package packaging
