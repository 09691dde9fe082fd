#!/usr/bin/env bash
# build.sh: builds the policy-eval harness (main.go beside this file) from
# Debian's packages of Kubernetes' own Go sources, in GOPATH mode, as the
# chart renderer is built with sprig. Prints the binary's path as its last line.
#
#   - the Go sources: the packages in packages.txt, from Debian sid (where
#     golang-k8s-apiserver-dev is 0.36), downloaded and unpacked into the
#     cache with a private apt list; nothing is installed on the system;
#   - Go: `go` on PATH if it is 1.26 or newer, else golang-1.26-go from
#     trixie-backports, unpacked into the cache the same way.
#
# Idempotent: each step is skipped when its result is in the cache.
# POLICY_EVAL_CACHE: where (default ~/.cache/sidecar-injector/policy-eval).
set -euo pipefail

die() { echo "policy-eval build: $*" >&2; exit 1; }
say() { echo "policy-eval build: $*" >&2; }

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${POLICY_EVAL_CACHE:-$HOME/.cache/sidecar-injector/policy-eval}
GO_SERIES=1.26
mkdir -p "$CACHE"

sources_key=$(sha256sum "$HERE/packages.txt" | cut -c1-16)
binary_key=$(cat "$HERE/main.go" "$HERE/packages.txt" | sha256sum | cut -c1-16)
OUT=$CACHE/policy-eval-$binary_key
if [[ -x $OUT ]]; then
  echo "$OUT"
  exit 0
fi

# --- a private apt for Debian's newer suites ---------------------------------
apt_dir=
apt_for() { # apt_for SUITE: lists for SUITE in a temporary apt directory
  for tool in apt-get dpkg-deb; do command -v "$tool" >/dev/null || die "$tool is missing (the harness is built from Debian's packages)"; done
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [[ -f $keyring ]] || die "$keyring is missing (apt-get install debian-archive-keyring)"
  local mirror
  mirror=$( (grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true) | head -n1 | tr -d ' ')
  [[ -n $mirror ]] || die "no Debian mirror found in /etc/apt/sources.list*"
  apt_dir=$(mktemp -d "${TMPDIR:-/tmp}/policy-eval-apt.XXXXXX")
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
  echo "deb [signed-by=$keyring] ${mirror%/} $1 main" >"$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update >"$apt_dir/update.log" 2>&1 || die "apt-get update ($1) failed: $(tail -n3 "$apt_dir/update.log")"
}
trap '[[ -z $apt_dir ]] || rm -rf "$apt_dir"' EXIT

unpack() { # unpack SUITE DEST PACKAGE...: downloads the packages from SUITE and unpacks them into DEST
  local suite=$1 dest=$2
  shift 2
  apt_for "$suite"
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download "$@") >"$apt_dir/download.log" 2>&1 ||
    die "apt-get download ($suite) failed: $(tail -n3 "$apt_dir/download.log")"
  rm -rf "$dest" "$dest.part"
  mkdir -p "$dest.part"
  for deb in "$apt_dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$dest.part" || die "dpkg-deb -x $(basename "$deb") failed"
    dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >>"$dest.part/.versions"
  done
  mv "$dest.part" "$dest"
  rm -rf "$apt_dir"
  apt_dir=
}

# --- Go -------------------------------------------------------------------------
GO=
if command -v go >/dev/null; then
  have=$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null || true)
  if [[ $have == go* && $(printf '%s\n%s\n' "$GO_SERIES" "${have#go}" | sort -V | head -n1) == "$GO_SERIES" ]]; then GO=$(command -v go); fi
fi
if [[ -z $GO ]]; then
  GO_HOME=$CACHE/go-$GO_SERIES
  export GOROOT=$GO_HOME/usr/lib/go-$GO_SERIES
  GO=$GOROOT/bin/go
  if ! "$GO" version >/dev/null 2>&1; then
    say "downloading golang-$GO_SERIES-go from Debian trixie-backports"
    unpack trixie-backports "$GO_HOME" "golang-$GO_SERIES-go" "golang-$GO_SERIES-src"
    "$GO" version >/dev/null 2>&1 || die "$GO does not run"
  fi
fi

# --- Kubernetes' Go sources ------------------------------------------------------
SRC=$CACHE/src-$sources_key
if [[ ! -f $SRC/.versions ]]; then
  mapfile -t packages < <(grep -v '^#' "$HERE/packages.txt" | grep .)
  say "downloading ${#packages[@]} Go source packages from Debian sid"
  unpack sid "$SRC" "${packages[@]}"
fi
say "$(grep -E '^golang-k8s-(apiserver|client-go)-dev ' "$SRC/.versions" | paste -sd, -) (Debian sid); $("$GO" version | cut -d' ' -f3)"

# --- build --------------------------------------------------------------------------
say "building (about 2 minutes when the build cache is cold)"
(cd "$HERE" && env GOPATH="$SRC/usr/share/gocode" GO111MODULE=off GOFLAGS= GOTOOLCHAIN=local GOENV=off CGO_ENABLED=0 \
  GOCACHE="$CACHE/gocache" "$GO" build -trimpath -o "$OUT.part" .) || die "go build failed (see above)"
mv "$OUT.part" "$OUT"
# Older builds of the harness go.
find "$CACHE" -maxdepth 1 \( -name "policy-eval-*" ! -name "$(basename "$OUT")" -o -name "src-*" ! -name "$(basename "$SRC")" \) -exec rm -rf {} +
echo "$OUT"
