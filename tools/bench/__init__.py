"""lfsreg benchmarks: lfsreg beside stock git + git-lfs (and beside other lfsreg revisions) in one run.

usage: python -m tools.bench SCENARIO... [--size 1GiB] [--reps N] [--lfsreg-rev REV] [--compression C] [--json FILE]

  local   lfsreg vs git + git-lfs on the local disk (floor: sha256sum; per compression)
  scale   a registry of 1,000 images x 10 tags: one push, tags/images listings, small pushes
  https   lfsreg vs git + git-lfs against the test servers (nginx + git http-backend + giftless)
  ssh     lfsreg over SSH (OpenSSH sshd, git-lfs-authenticate) vs over HTTP, same servers
  engine  push from / pull --load into a Docker Engine API (podman) vs through a docker-archive
  verify  lfsreg verify (target < 2 s) and copy on a registry of 3,000 images x 10 tags
  cost    lfsreg du on a registry of 3,000 images x 10 tags (cold and warm; the registry is kept in --workdir)
  serve   skopeo copy out of / into lfsreg serve vs docker-registry (warm, cold HTTP), 8 clients, TTFB on 30,000 tags
  retention  prune + gc of a local registry of 1,000 images down to 100 live ones (time, bytes freed, du)
  zstd    push/pull beside zstd -T0, zstd -d and a sha256 pass on the same archive (best of --reps; use 2)
  listing tags/images of the partial scenario's registry (--partial-images), cold and warm, local and over HTTP

  python -m tools.bench local --size 64MiB                 # smoke run (seconds)
  python -m tools.bench local scale https ssh --reps 3     # medians of 3
  python -m tools.bench local --lfsreg-rev dfae9bd         # the working tree beside that commit

Every command runs under a wrapper measuring its wall time and peak RSS; the report shows the
median of ``--reps``, ratios to the git + git-lfs baseline and to each ``--lfsreg-rev`` (a
snapshot of that commit's ``lfsreg/`` run by the same interpreter), the targets (met / NOT
met) and every failure (the run goes on; exit status 1). The generated image (real files from
/usr, /opt...) is cached in ``--workdir``; the report and a JSON copy land in its ``logs/``.
The servers are the test suite's own (``tests/peers``). Needs git, git-lfs, sha256sum; https
and ssh what ``tools/install-test-deps.sh`` installs; engine podman (as root).
"""
