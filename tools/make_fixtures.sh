#!/usr/bin/env bash
# Regenerate lfsreg's small test fixtures (fixtures/) with real third-party tools.
#
# usage: tools/make_fixtures.sh            # rebuild fixtures/ in place
#        tools/make_fixtures.sh --check    # rebuild into a temp dir, compare with fixtures/
#        tools/make_fixtures.sh --out DIR  # build into DIR instead (created if missing)
#
# Images are built by umoci 0.4.7 (init/new/unpack/repack/config/tag) and converted/copied by
# skopeo 1.9.3 (oci:, oci-archive:, docker-archive:, zstd recompression), both from Debian.
# Python (stdlib) only generates deterministic file *contents* for the layers, composes the
# one OCI image index that neither tool can create (multi.oci, see fixtures/README.md), and
# derives the deliberately broken inputs in fixtures/bad/ from the real outputs.
#
# Reproducible: same tools + same script => byte-identical files.  Every file's content is
# generated from fixed seeds, every new/changed path gets a fixed mtime before umoci packs it
# (see gen.py below: this also makes the layers independent of the build filesystem), all
# "created" timestamps are passed explicitly, architecture/os are explicit, umask is fixed.
# The one skopeo output that embeds "now" (the tar headers of an oci-archive, which skopeo
# tars from a temp dir) gets its header mtime fields zeroed in place (nothing else changes).
# fixtures/SHA256SUMS lists every generated file; `--check` rebuilds and compares.
#
# Needs root (umoci unpack/repack keep ownership) and the packages from
# tools/install-test-deps.sh (skopeo umoci gzip python3).  Takes ~2 s.
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FIXTURES=$ROOT/fixtures
MODE="write"
OUT_ARG=
while [ $# -gt 0 ]; do
  case $1 in
    --check) MODE=check ;;
    --out) OUT_ARG=${2:?--out needs a directory}; MODE=out; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "make_fixtures: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -z "$OUT_ARG" ] || OUT_ARG=$(realpath -m -- "$OUT_ARG")   # we cd around below

[ "$(id -u)" -eq 0 ] || { echo "make_fixtures: must run as root (umoci unpack/repack)" >&2; exit 1; }
for t in skopeo umoci python3 gzip sha256sum; do
  command -v "$t" >/dev/null || { echo "make_fixtures: $t missing (tools/install-test-deps.sh)" >&2; exit 1; }
done

# Fixed inputs.  Changing any of these changes the fixtures (update fixtures/README.md).
CREATED=2024-01-01T00:00:00Z          # config "created" and every history "created"
EPOCH=$(date -u -d "$CREATED" +%s)    # mtime of every file in the layers (dirs: +layer no.)
AUTHOR="lfsreg fixtures <fixtures@lfsreg.invalid>"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lfsreg-fixtures.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export TMPDIR=$WORK/tmp               # skopeo's temp files (oci-archive staging)
mkdir -p "$TMPDIR"
OUT=$WORK/out
mkdir -p "$OUT/bad"
B=$WORK/build.oci                     # umoci scratch layout
SK=(skopeo --insecure-policy copy -q)  # no dependence on /etc/containers/policy.json

# --- deterministic layer contents --------------------------------------------------------------
cat >"$WORK/gen.py" <<'PY'
"""Write one fixture layer's files into an unpacked rootfs: gen.py LAYER ROOTFS EPOCH N.

Contents come from fixed seeds.  Every path this layer creates, changes or removes is
recorded; afterwards the new/changed entries get mtime EPOCH and all their ancestor
directories (up to the rootfs) get EPOCH + N (N = layer number).  So exactly those
directories differ from umoci's mtree and are always part of the new layer, whatever the
filesystem reports as directory size (ext4 and tmpfs differ), and nothing else is touched.
"""
import json
import os
import random
import sys

CHANGED: list[str] = []

WORDS = (
    "registry layer manifest digest blob index config tag repository push pull commit tree "
    "object pointer storage content address sha256 gzip zstd tarball archive platform arch "
    "image container runtime history label entrypoint volume signature reference annotation"
).split()


def text(seed: int, n_lines: int, width: int = 72) -> str:
    rnd = random.Random(seed)
    lines = []
    for i in range(n_lines):
        line, words = "", []
        while len(line) < width - 12:
            words.append(rnd.choice(WORDS))
            line = " ".join(words)
        lines.append(f"{i:04d} {line}")
    return "\n".join(lines) + "\n"


def put(root: str, rel: str, data, mode: int = 0o644) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    CHANGED.append(rel)


def symlink(root: str, target: str, rel: str) -> None:
    os.symlink(target, os.path.join(root, rel))
    CHANGED.append(rel)


def link(root: str, src: str, rel: str) -> None:
    os.link(os.path.join(root, src), os.path.join(root, rel))
    CHANGED.append(rel)


def mkdir(root: str, rel: str, mode: int) -> None:
    os.makedirs(os.path.join(root, rel), exist_ok=True)
    os.chmod(os.path.join(root, rel), mode)
    CHANGED.append(rel)


def remove(root: str, rel: str) -> None:
    os.remove(os.path.join(root, rel))
    CHANGED.append(rel)


def base(r: str) -> None:
    put(r, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/app:/bin/sh\n")
    put(r, "etc/group", "root:x:0:\napp:x:1000:\n")
    put(r, "etc/hostname", "lfsreg-fixture\n")
    put(r, "etc/os-release", 'NAME="lfsreg fixture base"\nID=lfsreg-base\nVERSION_ID=1.0\n')
    put(r, "etc/motd", "base image\n")
    put(r, "usr/share/doc/base/copyright", text(1, 40))
    put(r, "usr/lib/base/libfake.so.1", random.Random(2).randbytes(3072), 0o755)
    symlink(r, "libfake.so.1", "usr/lib/base/libfake.so")
    put(r, "usr/bin/hello.sh", "#!/bin/sh\necho hello from lfsreg fixture \"$@\"\n", 0o755)
    link(r, "usr/bin/hello.sh", "usr/bin/hello")
    symlink(r, "usr/bin", "bin")
    mkdir(r, "tmp", 0o1777)


def app2(r: str) -> None:
    put(r, "app/app.py", "import sys\n\nprint('lfsreg fixture app', sys.argv[1:])\n")
    put(r, "app/words.txt", text(3, 90))
    put(r, "app/data.bin", random.Random(4).randbytes(4096))


def app3(r: str) -> None:
    cfg = {"listen": ":8080", "storage": "/app/data", "features": ["lfs", "oci"]}
    put(r, "app/config.json", json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    put(r, "app/VERSION", "1.0\n")
    put(r, "etc/motd", "acme/app 1.0\n")                 # replaces the base file
    remove(r, "etc/hostname")                             # -> whiteout .wh.hostname


def tool2(r: str) -> None:
    put(r, "opt/tool/bin/tool", "#!/bin/sh\nexec /usr/bin/hello.sh tool \"$@\"\n", 0o755)
    rnd = random.Random(5)
    rows = ["id,name,size,digest"] + [
        f"{i},{rnd.choice(WORDS)},{rnd.randrange(1 << 20)},{rnd.getrandbits(64):016x}"
        for i in range(120)
    ]
    put(r, "opt/tool/share/table.csv", "\n".join(rows) + "\n")


def arch(r: str, name: str) -> None:
    put(r, "etc/arch", name + "\n")
    put(r, f"usr/lib/{name}/blob.bin", random.Random(name).randbytes(1024))


LAYERS = {
    "base": base, "app2": app2, "app3": app3, "tool2": tool2,
    "amd64": lambda r: arch(r, "amd64"), "arm64": lambda r: arch(r, "arm64"),
}
root, epoch, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
LAYERS[sys.argv[1]](root)
dirs = {""}
for rel in CHANGED:
    path = os.path.join(root, rel)
    if os.path.lexists(path):
        os.utime(path, (epoch, epoch), follow_symlinks=False)
    parent = os.path.dirname(rel)
    while parent:
        dirs.add(parent)
        parent = os.path.dirname(parent)
for rel in sorted(dirs, key=len, reverse=True):
    os.utime(os.path.join(root, rel), (epoch + n, epoch + n))
PY

# umoci helpers ------------------------------------------------------------------------------
# add_layer TAG LAYER "created_by": unpack TAG (once per tag), write LAYER's files, repack them
# as one new layer (umoci diffs the rootfs against the mtree of the previous state).
# (Not `umoci insert`: 0.4.7's insert writes layer tars without the end-of-archive blocks,
# which GNU tar and Python's tarfile reject -- umoci issue #436.)
LAYER_N=0
add_layer() {
  local tag=$1 layer=$2 by=$3 bundle=$WORK/bundle-$1
  [ -d "$bundle" ] || umoci unpack --image "$B:$tag" "$bundle" >/dev/null
  LAYER_N=$((LAYER_N + 1))
  python3 "$WORK/gen.py" "$layer" "$bundle/rootfs" "$EPOCH" "$LAYER_N"
  umoci repack --image "$B:$tag" --refresh-bundle --history.created "$CREATED" \
    --history.author "$AUTHOR" --history.created_by "$by" "$bundle"
}

# --- build the images in a scratch layout ------------------------------------------------------
umoci init --layout "$B"
umoci new --image "$B:base"
umoci config --image "$B:base" --no-history --created "$CREATED" --architecture amd64 --os linux
add_layer base base "make_fixtures: base layer (/etc /usr /bin /tmp)"
for t in app tool; do umoci tag --image "$B:base" "$t"; done   # share the very same base layer
umoci config --image "$B:base" --no-history --created "$CREATED" --author "$AUTHOR" \
  --config.cmd /bin/sh --config.env PATH=/usr/bin:/bin \
  --config.label org.opencontainers.image.title=base \
  --config.label org.opencontainers.image.version=1.0

add_layer app app2 "make_fixtures: app layer (/app code, words, data)"
add_layer app app3 "make_fixtures: app config layer (/app/config.json, /etc/motd, rm /etc/hostname)"
umoci config --image "$B:app" --created "$CREATED" --author "$AUTHOR" \
  --history.created "$CREATED" --history.author "$AUTHOR" \
  --history.created_by 'make_fixtures: config (Entrypoint Cmd Env Labels WorkingDir User ExposedPorts)' \
  --config.entrypoint /usr/bin/hello.sh --config.cmd=--serve --config.cmd=/app/config.json \
  --config.env PATH=/usr/bin:/bin --config.env APP_VERSION=1.0 --config.env LANG=C.UTF-8 \
  --config.workingdir /app --config.user 1000:1000 --config.exposedports 8080/tcp \
  --config.label org.opencontainers.image.title=app \
  --config.label org.opencontainers.image.version=1.0 \
  --config.label org.opencontainers.image.vendor=acme \
  --config.label com.example.fixture=true

add_layer tool tool2 "make_fixtures: tool layer (/opt/tool)"
umoci config --image "$B:tool" --no-history --created "$CREATED" --author "$AUTHOR" \
  --config.entrypoint /opt/tool/bin/tool --config.env PATH=/opt/tool/bin:/usr/bin:/bin \
  --config.label org.opencontainers.image.title=tool \
  --config.label org.opencontainers.image.version=2.0

for a in amd64 arm64; do            # two single-platform images of acme/multi:1.0
  umoci new --image "$B:multi-$a"
  umoci config --image "$B:multi-$a" --no-history --created "$CREATED" --architecture "$a" --os linux
  add_layer "multi-$a" "$a" "make_fixtures: $a layer"
  umoci config --image "$B:multi-$a" --no-history --created "$CREATED" --author "$AUTHOR" \
    --config.cmd /bin/sh --config.label org.opencontainers.image.title=multi
done
umoci gc --layout "$B"

# --- export with skopeo ------------------------------------------------------------------------
cd "$OUT"
"${SK[@]}" "oci:$B:app" oci:app.oci:1.0
"${SK[@]}" "oci:$B:app" docker-archive:app.docker.tar:acme/app:1.0
"${SK[@]}" --additional-tag acme/app:latest "oci:$B:app" docker-archive:app-tags.docker.tar:acme/app:1.0
"${SK[@]}" "oci:$B:app" docker-archive:untagged.docker.tar
"${SK[@]}" "oci:$B:app" oci-archive:app.oci.tar:1.0
"${SK[@]}" --dest-compress-format zstd "oci:$B:app" oci:app-zstd.oci:1.0
gzip -n -9 -c app.docker.tar >app.docker.tar.gz

"${SK[@]}" "oci:$B:base" docker-archive:base.docker.tar:acme/base:1.0
"${SK[@]}" "oci:$B:tool" docker-archive:tool.docker.tar:acme/tool:2.0
"${SK[@]}" "oci:$B:tool" oci:tool.oci:2.0
for r in base:acme/base:1.0 app:acme/app:1.0 tool:acme/tool:2.0; do   # one layout, 3 images
  "${SK[@]}" "oci:$B:${r%%:*}" "oci:shared.oci:${r#*:}"
done

# multi-platform: skopeo cannot create an index, so python composes it from the two
# skopeo-written manifests (digest/size/platform), then skopeo copies the whole index
# (verifying every digest) into the final layout.
for a in amd64 arm64; do "${SK[@]}" "oci:$B:multi-$a" "oci:$WORK/multi-src.oci:$a"; done
python3 - "$WORK/multi-src.oci" <<'PY'
import hashlib, json, os, sys
lay = sys.argv[1]
def blob(d): return os.path.join(lay, "blobs", "sha256", d.split(":", 1)[1])
idx = json.load(open(os.path.join(lay, "index.json")))
entries = []
for d in idx["manifests"]:
    man = json.load(open(blob(d["digest"])))
    cfg = json.load(open(blob(man["config"]["digest"])))
    entries.append({"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
                    "platform": {"architecture": cfg["architecture"], "os": cfg["os"]}})
entries.sort(key=lambda e: e["platform"]["architecture"])
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": entries}
raw = json.dumps(index, separators=(",", ":")).encode()
dig = "sha256:" + hashlib.sha256(raw).hexdigest()
open(blob(dig), "wb").write(raw)
idx["manifests"].append({"mediaType": index["mediaType"], "digest": dig, "size": len(raw),
                         "annotations": {"org.opencontainers.image.ref.name": "1.0"}})
json.dump(idx, open(os.path.join(lay, "index.json"), "w"), separators=(",", ":"))
PY
"${SK[@]}" --all --preserve-digests "oci:$WORK/multi-src.oci:1.0" oci:multi.oci:1.0

# Docker media types inside OCI layouts (what `docker push` gives a registry): skopeo converts
# the manifests (and the index into a Docker manifest list); configs and layers are unchanged.
"${SK[@]}" -f v2s2 "oci:$B:app" oci:app-docker.oci:1.0
"${SK[@]}" --all -f v2s2 oci:multi.oci:1.0 oci:multi-docker.oci:1.0

# --- normalise + derive ------------------------------------------------------------------------
# oci-archive: skopeo tars its temp layout with the files' real mtimes; zero the ustar mtime
# field of every header in place and fix the header checksum.  Nothing else is touched.
python3 - app.oci.tar <<'PY'
import sys
path = sys.argv[1]
buf = bytearray(open(path, "rb").read())
off = 0
while off + 512 <= len(buf) and any(buf[off:off + 512]):
    hdr = buf[off:off + 512]
    assert hdr[257:262] == b"ustar", f"not a ustar header at {off}"
    assert hdr[156:157] in b"05", f"unexpected member type {hdr[156:157]!r} at {off}"
    size = int(hdr[124:136].split(b"\0")[0].strip() or b"0", 8)
    hdr[136:148] = b"%011o\0" % 0
    hdr[148:156] = b" " * 8
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    buf[off:off + 512] = hdr
    off += 512 + (size + 511) // 512 * 512
open(path, "wb").write(buf)
PY

# fixtures/bad: deliberately broken inputs derived from the real outputs above.
python3 - <<'PY'
import io, json, os, shutil, tarfile

src = "app.docker.tar"

def members(path):
    with tarfile.open(path) as t:
        return [(m, t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()]

def write(path, items):
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
        for m, data in items:
            t.addfile(m, io.BytesIO(data) if data is not None else None)

with tarfile.open(src) as t:
    manifest = json.load(t.extractfile("manifest.json"))
    layer = manifest[0]["Layers"][1]                 # the /app layer
    m = t.getmember(layer)
    inner = tarfile.open(fileobj=io.BytesIO(t.extractfile(m).read()))
    words = inner.getmember("app/words.txt")

# 1. digest mismatch: same archive, 16 bytes inside app/words.txt of layer 2 overwritten
#    (sizes unchanged, both tar levels still well-formed; sha256 of the layer differs).
raw = bytearray(open(src, "rb").read())
pos = m.offset_data + words.offset_data + 100
raw[pos:pos + 16] = b"TAMPERED-BYTES!!"
open("bad/digest-mismatch.docker.tar", "wb").write(raw)

# 2. truncated: the first 60 % of the archive.
data = open(src, "rb").read()
open("bad/truncated.docker.tar", "wb").write(data[: len(data) * 6 // 10])

# 3./4. unsafe member names: the real archive with its last layer member renamed to
#    "../evil" / "/etc/evil" (content and digest unchanged, legacy symlink to it dropped) and
#    manifest.json's Layers pointing there, so the unsafe path is the only thing wrong.
last = manifest[0]["Layers"][-1]
for fname, evil in (("path-traversal", "../evil"), ("absolute-path", "/etc/evil")):
    man = json.loads(json.dumps(manifest))
    man[0]["Layers"][-1] = evil
    items = []
    for mem, data in members(src):
        if mem.name == "manifest.json":
            data = json.dumps(man, separators=(",", ":")).encode()
            mem.size = len(data)
        elif mem.name == last:
            mem.name = evil
        elif mem.issym() and mem.linkname == "../" + last:
            continue
        items.append((mem, data))
    write(f"bad/{fname}.docker.tar", items)

# 5. no manifest.json (the rest of the real archive, unchanged members).
write("bad/no-manifest.docker.tar", [x for x in members(src) if x[0].name != "manifest.json"])

# 6. a layer referenced by manifest.json is missing (and so is its legacy symlink).
write("bad/missing-layer.docker.tar",
      [x for x in members(src) if x[0].name != layer and x[0].linkname != "../" + layer])

# 7. OCI layout whose layer blob does not match its digest (same size).
shutil.copytree("app.oci", "bad/blob-mismatch.oci")
idx = json.load(open("app.oci/index.json"))
man = json.load(open("app.oci/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
p = "bad/blob-mismatch.oci/blobs/sha256/" + man["layers"][1]["digest"][7:]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0xFF
open(p, "wb").write(b)
PY

# --- checksums, then install / check -----------------------------------------------------------
find "$OUT" -exec touch -h -d @0 {} +
(cd "$OUT" && find . -type f -printf '%P\0' | sort -z | xargs -0 sha256sum >"$WORK/sums")
mv "$WORK/sums" "$OUT/SHA256SUMS"

case $MODE in
  check)
    if diff -u "$FIXTURES/SHA256SUMS" "$OUT/SHA256SUMS" && (cd "$FIXTURES" && sha256sum --quiet -c SHA256SUMS); then
      extra=$(cd "$FIXTURES" && find . -type f ! -name SHA256SUMS ! -path ./README.md ! -path './.*' | sed 's|^\./||' | sort \
        | comm -23 - <(cut -c67- "$OUT/SHA256SUMS"))
      if [ -n "$extra" ]; then echo "make_fixtures: stale files in fixtures/: $extra" >&2; exit 1; fi
      echo "make_fixtures: OK, fixtures/ is byte-identical to a fresh build ($(wc -l <"$OUT/SHA256SUMS") files)"
    else
      echo "make_fixtures: fixtures/ differs from a fresh build (see above)" >&2; exit 1
    fi ;;
  out)
    mkdir -p "$OUT_ARG"; cp -a "$OUT/." "$OUT_ARG/"
    echo "make_fixtures: wrote $(wc -l <"$OUT/SHA256SUMS") files to $OUT_ARG" ;;
  write)
    mkdir -p "$FIXTURES"
    find "$FIXTURES" -mindepth 1 -maxdepth 1 ! -name README.md ! -name '.*' -exec rm -rf {} +
    cp -a "$OUT/." "$FIXTURES/"
    echo "make_fixtures: wrote $(wc -l <"$OUT/SHA256SUMS") files to $FIXTURES ($(du -sh --apparent-size "$FIXTURES" | cut -f1))" ;;
esac
