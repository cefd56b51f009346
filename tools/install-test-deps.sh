#!/usr/bin/env bash
# Install the Debian packages that lfsreg's test suite (and tools/make_fixtures.sh) need.
#
# usage: tools/install-test-deps.sh [EXTRA_DEB_PACKAGE...]
#
# Idempotent and fast: one dpkg-query call decides what is missing; when everything is
# present it exits without touching apt (~0.1 s).  Missing packages are installed with
# `apt-get install --no-install-recommends`; `apt-get update` runs only when that install
# fails (e.g. no package lists yet on a fresh machine), then the install is retried once.
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
# Peers added by later issues go here (one per line with a comment), e.g.:
#   nginx fcgiwrap   - git http-backend over HTTP
#   openssh-server   - SSH remotes
#   apache2-utils    - htpasswd for basic-auth peers
#   docker-registry  - a reference OCI distribution registry
#   podman           - pull/push/run against lfsreg
PEER_PKGS=(
)
# --------------------------------------------------------------------------------------------

PKGS=("${CORE_PKGS[@]}" "${PEER_PKGS[@]}" "$@")

missing=()
# db:Status-Abbrev is "ii " for an installed package; unknown packages print nothing.
status=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PKGS[@]}" 2>/dev/null || true)
for p in "${PKGS[@]}"; do
  if ! grep -qE "^${p//+/\\+}(:[a-z0-9]+)? ii" <<<"$status"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    echo "install-test-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
fi

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
