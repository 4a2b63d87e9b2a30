#!/usr/bin/env bash
# Builds the Debian package OUTDIR/sentry-nflog_<version>_<arch>.deb with
# nfpm (pinned in packaging/nfpm.mod, run with go tool): the binary, the
# config as a conffile, the systemd unit (paths in /usr/bin), the fleet
# drop-in as an example, the man page and shell completions made by the
# binary from its own help, copyright, changelog and maintainer scripts.
#
# Usage: packaging/deb.sh [OUTDIR]   (default: bin)
# Environment: GO, DEB_VERSION (default from git), DEB_MAINTAINER,
# SOURCE_DATE_EPOCH (default: the last commit's time; the build is
# reproducible).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${1:-bin}
mkdir -p "$out"
GO=${GO:-go}
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
export STAGE

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

# A tag vX.Y.Z gives X.Y.Z, with +N.gHASH for N commits past it; no tag
# gives 0.0~gitYYYYMMDD.HASH. Uncommitted changes add +dirty.
if [ -z "${DEB_VERSION:-}" ]; then
	if tag=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
		DEB_VERSION=$(printf '%s' "${tag#v}" | sed -E 's/-([0-9]+)-g([0-9a-f]+)$/+\1.g\2/')
	else
		DEB_VERSION=0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d).$(git rev-parse --short=12 HEAD 2>/dev/null || echo 0)
	fi
	if ! git diff --quiet HEAD -- 2>/dev/null; then
		DEB_VERSION=$DEB_VERSION+dirty
	fi
fi
export DEB_VERSION
export DEB_MAINTAINER=${DEB_MAINTAINER:-sentry-nflog maintainers <maintainers@sentry-nflog.invalid>}

goarch=$($GO env GOARCH)
case $goarch in
386) DEB_ARCH=i386 ;;
arm) DEB_ARCH=armhf ;;
ppc64le) DEB_ARCH=ppc64el ;;
*) DEB_ARCH=$goarch ;;
esac
export DEB_ARCH

# Static, position-independent (Debian's hardening default), stripped,
# reproducible.
CGO_ENABLED=0 $GO build -trimpath -buildvcs=false -buildmode=pie -ldflags "-s -w -X main.version=$DEB_VERSION" -o "$STAGE/sentry-nflog" ./cmd/sentry-nflog
bin=$STAGE/sentry-nflog
if [ "$goarch" != "$($GO env GOHOSTARCH)" ]; then
	# A cross build cannot run itself: the help comes from a host build.
	$GO build -o "$STAGE/host-sentry-nflog" ./cmd/sentry-nflog
	bin=$STAGE/host-sentry-nflog
fi
"$bin" man | gzip -9n > "$STAGE/sentry-nflog.1.gz"
"$bin" completion bash > "$STAGE/sentry-nflog.bash"
"$bin" completion zsh > "$STAGE/_sentry-nflog"
# The repository's unit is for `make install` (/usr/local); the package's
# binary is in /usr/bin, and it ships the man page.
sed -e 's|/usr/local/bin/sentry-nflog|/usr/bin/sentry-nflog|g' \
	-e 's|^Documentation=|Documentation=man:sentry-nflog(1) |' \
	-e 's|Installed by `make install`|Installed by the sentry-nflog package|' \
	systemd/sentry-nflog.service > "$STAGE/sentry-nflog.service"

first=$(git log --format=%cd --date=format:%Y 2>/dev/null | tail -n 1)
last=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
years=${first:-$last}
[ "$years" = "$last" ] || years=$years-$last
{
	while IFS= read -r line; do
		case $line in
		@MODULES@)
			echo " the Go standard library, $($GO env GOVERSION)"
			$GO version -m "$STAGE/sentry-nflog" | awk '$1 == "dep" { printf " %s %s\n", $2, $3 }'
			;;
		*) printf '%s\n' "${line//@YEARS@/$years}" ;;
		esac
	done < packaging/deb/copyright
} > "$STAGE/copyright"

{
	echo "sentry-nflog ($DEB_VERSION-1) unstable; urgency=medium"
	echo
	echo "  * Built from commit $(git rev-parse HEAD 2>/dev/null || echo unknown)."
	echo
	echo " -- $DEB_MAINTAINER  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$STAGE/changelog.Debian.gz"

deb=$out/sentry-nflog_${DEB_VERSION}-1_${DEB_ARCH}.deb
$GO tool -modfile=packaging/nfpm.mod nfpm package --config packaging/nfpm.yaml --packager deb --target "$deb" >/dev/null
echo "$deb"
