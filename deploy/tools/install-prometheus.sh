#!/usr/bin/env bash
# promtool and prometheus for the deploy tests (tests/deploy/test_prometheus.py), in
# .tools/prometheus/: from Debian's `prometheus` package, unpacked, never installed, so
# that it needs no root once apt knows the package. Idempotent; offline afterwards.
#
# Order of attempts: `apt-get download prometheus`; as root, `apt-get update` and again;
# without root, apt with package lists of its own under .tools/ (no system state
# touched); last, the official release tarball, if its host answers.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEST=.tools/prometheus
# The release of the last resort: the version deploy/compose/compose.yaml runs.
RELEASE_VERSION=3.16.0
RELEASE_URL=https://github.com/prometheus/prometheus/releases/download

die() { echo "install-prometheus.sh: $*" >&2; exit 1; }

if [ -x "$DEST/promtool" ] && [ -x "$DEST/prometheus" ] && "$DEST/promtool" --version >/dev/null 2>&1; then
    exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

download_deb() {
    (cd "$WORK" && apt-get download "$@" prometheus) >"$WORK/apt.log" 2>&1
}

private_apt_download() {
    # apt with its own lists, cache and no lock: works for any user.
    local state="$WORK/apt-state"
    mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
    local opts=(-o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
                -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)")
    apt-get "${opts[@]}" -qq update >"$WORK/apt-update.log" 2>&1 && download_deb "${opts[@]}"
}

from_deb() {
    command -v apt-get >/dev/null || return 1
    download_deb && return 0
    if [ "$(id -u)" = 0 ]; then
        apt-get -qq update >"$WORK/apt-update.log" 2>&1 && download_deb
    else
        private_apt_download
    fi
}

if from_deb; then
    deb=$(ls "$WORK"/prometheus_*.deb)
    dpkg-deb -x "$deb" "$WORK/root"
    mkdir -p "$DEST"
    install -m 0755 "$WORK/root/usr/bin/promtool" "$WORK/root/usr/bin/prometheus" "$DEST/"
    echo "install-prometheus.sh: $(basename "$deb") (Debian) unpacked into $DEST" >&2
elif curl -fsS --max-time 10 -o /dev/null -I "$RELEASE_URL/v$RELEASE_VERSION/sha256sums.txt"; then
    name="prometheus-$RELEASE_VERSION.linux-amd64"
    curl -fsSL --max-time 300 -o "$WORK/$name.tar.gz" "$RELEASE_URL/v$RELEASE_VERSION/$name.tar.gz"
    curl -fsSL --max-time 30 -o "$WORK/sha256sums.txt" "$RELEASE_URL/v$RELEASE_VERSION/sha256sums.txt"
    (cd "$WORK" && grep " $name.tar.gz\$" sha256sums.txt | sha256sum -c --quiet -) \
        || die "checksum mismatch for $name.tar.gz"
    tar -xzf "$WORK/$name.tar.gz" -C "$WORK"
    mkdir -p "$DEST"
    install -m 0755 "$WORK/$name/promtool" "$WORK/$name/prometheus" "$DEST/"
    echo "install-prometheus.sh: Prometheus $RELEASE_VERSION release unpacked into $DEST" >&2
else
    cat "$WORK"/apt*.log >&2 2>/dev/null || true
    die "neither Debian's prometheus package nor the release tarball could be fetched"
fi
"$DEST/promtool" --version >&2
