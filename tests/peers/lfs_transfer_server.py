"""A minimal ``git-lfs-transfer`` server (git-lfs ``docs/proposals/ssh_adapter.md``), for tests only.

``python lfs_transfer_server.py STORE upload|download`` speaks the pure-SSH LFS protocol on
stdin/stdout (started by the sshd fixture's forced command, :mod:`peers.sshd`): capabilities,
``version 1``, ``batch``, ``put-object`` + ``verify-object`` (upload), ``get-object``
(download), ``quit``. Objects live in ``STORE/<oid>``; uploads are hashed and rejected (status
400) on mismatch.

The batch answer hands out an ``id`` and a ``token`` per upload. The proposal says a client
must pass them back; stock git-lfs 3.3 does not (its ``put-object`` carries only ``size``),
and real servers (scutiger) hand out none, so a missing token is accepted and a wrong one is
refused (400). Every ``put-object`` / ``verify-object`` / ``get-object`` is logged to
``STORE/.requests`` as ``<command> <oid> <arguments...>`` so that a test can check what a
client sent back.

A test scripts a one-shot fault for a command on an object by writing ``cut``, a status (e.g.
``500``) or ``stall SECONDS`` into ``STORE/.fault.<command>.<oid>``; several lines script as many
faults, one per session that meets the command (first line first). ``stall`` on ``get-object``
sends the answer's head and half the object's first chunk, then goes silent for SECONDS (or until
the client closes the channel) and hangs up: a stall in the middle of an exchange. Each ``batch`` appends its operation and
``refname`` (``-`` if none) to ``STORE.batch-refs`` (beside the store). Stdlib only (run by
path, not imported).
"""

from __future__ import annotations

import hashlib
import os
import re
import select
import sys
import tempfile

FLUSH, DELIM = b"0000", b"0001"
_OID = re.compile(r"^[0-9a-f]{64}$")


class Conn:
    def __init__(self) -> None:
        self.rin = sys.stdin.buffer
        self.out = sys.stdout.buffer

    def read(self) -> bytes | None:
        """A packet's payload; ``None`` for flush, ``b""`` for delim."""
        head = self.rin.read(4)
        if len(head) < 4:
            raise EOFError
        n = int(head, 16)
        if n == 0:
            return None
        if n == 1:
            return b""
        return self.rin.read(n - 4)

    def text(self, pkt: bytes) -> str:
        return pkt.decode().rstrip("\n")

    def send(self, *pkts: bytes | str) -> None:
        out = []
        for p in pkts:
            if p in (FLUSH, DELIM):
                out.append(p)
            else:
                data = p.encode() + b"\n" if isinstance(p, str) else p
                out.append(b"%04x" % (len(data) + 4) + data)
        self.out.write(b"".join(out))
        self.out.flush()

    def _lines(self) -> list[str]:
        lines = []
        while (pkt := self.read()) is not None:
            lines.append(self.text(pkt))
        return lines


def _claim_fault(store: str, cmd: str) -> str | None:
    """A one-shot fault scripted by a test: the file ``STORE/.fault.<command>.<oid>`` holds
    ``cut``, a status or ``stall SECONDS`` (a line each); the first session to claim it (atomic
    rename) applies its first line and puts the others back."""
    parts = cmd.split()
    if len(parts) != 2:
        return None
    marker = os.path.join(store, f".fault.{parts[0]}.{parts[1]}")
    claimed = marker + f".{os.getpid()}"
    try:
        os.rename(marker, claimed)
    except OSError:
        return None
    with open(claimed) as f:
        fault, *rest = f.read().strip().splitlines() or [""]
    if rest:
        with open(claimed, "w") as f:
            f.write("\n".join(rest) + "\n")
        os.rename(claimed, marker)
    else:
        os.unlink(claimed)
    return fault.strip()


def _stall(c: Conn, path: str, seconds: float) -> int:
    """Start the answer to ``get-object``, then go silent until ``seconds`` pass or the client leaves."""
    with open(path, "rb") as f:
        chunk = f.read(65516)
    half = chunk[: max(1, len(chunk) // 2)]
    c.send("status 200", f"size={os.path.getsize(path)}", DELIM)
    c.out.write(b"%04x" % (len(half) + 4) + half)
    c.out.flush()
    select.select([c.rin], [], [], seconds)  # readable at EOF: the client closed the channel
    return 0


def main(store: str, operation: str) -> int:
    os.makedirs(store, exist_ok=True)
    c = Conn()
    c.send("version=1", FLUSH)
    first = c.read()
    while c.read() is not None:  # arguments, none expected
        pass
    if first is None or c.text(first) != "version 1":
        c.send("status 400", FLUSH)
        return 1
    c.send("status 200", FLUSH)
    while True:
        try:
            first = c.read()
        except EOFError:
            return 0
        if first is None:
            continue
        cmd = c.text(first)
        args: list[str] = []
        delim = False
        while (pkt := c.read()) is not None:
            if pkt == b"":
                delim = True
                break
            args.append(c.text(pkt))
        kv = dict(a.split("=", 1) for a in args if "=" in a)
        if cmd.split(" ", 1)[0] in ("put-object", "verify-object", "get-object"):
            with open(os.path.join(store, ".requests"), "a") as log:  # O_APPEND: one write per line
                log.write(" ".join([cmd, *args]) + "\n")
        fault = _claim_fault(store, cmd)
        if fault == "cut":
            return 0  # hang up in the middle of the exchange
        if fault and fault.startswith("stall ") and cmd.startswith("get-object ") and os.path.exists(os.path.join(store, cmd.split()[1])):
            return _stall(c, os.path.join(store, cmd.split()[1]), float(fault.split()[1]))
        if fault:
            if delim:
                while c.read() is not None:  # the request's lines or data
                    pass
            c.send(f"status {fault}", DELIM, "message scripted fault", FLUSH)
            continue
        if cmd == "quit":
            c.send("status 200", FLUSH)
            return 0
        if cmd == "batch":
            lines = c._lines() if delim else []
            with open(store.rstrip("/") + ".batch-refs", "a") as log:  # which ref each batch named (tests read it)
                log.write(f"{operation} {kv.get('refname', '-')}\n")
            reply = []
            for line in lines:
                oid, size = line.split()[:2]
                have = os.path.exists(os.path.join(store, oid)) and os.path.getsize(os.path.join(store, oid)) == int(size)
                if operation == "upload":
                    reply.append(f"{oid} {size} {'noop' if have else 'upload'}" + ("" if have else f" id={oid[:8]} token=t-{oid[:6]}"))
                else:
                    reply.append(f"{oid} {size} {'download' if have else 'noop'}")
            c.send("status 200", "hash-algo=sha256", DELIM, *reply, FLUSH)
        elif cmd.startswith("put-object ") and operation == "upload":
            oid = cmd.split()[1]
            size = int(kv.get("size", "-1"))
            fd, tmp = tempfile.mkstemp(dir=store)
            h, count = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as f:
                while (pkt := c.read()) is not None:
                    f.write(pkt)
                    h.update(pkt)
                    count += len(pkt)
            token_ok = kv.get("token", f"t-{oid[:6]}") == f"t-{oid[:6]}"  # absent (git-lfs 3.3) or ours
            if not _OID.match(oid) or h.hexdigest() != oid or count != size or not token_ok:
                os.unlink(tmp)
                c.send("status 400", DELIM, "message object does not match its oid, size or token", FLUSH)
            else:
                os.replace(tmp, os.path.join(store, oid))
                c.send("status 200", FLUSH)
        elif cmd.startswith("verify-object ") and operation == "upload":
            oid = cmd.split()[1]
            path = os.path.join(store, oid)
            ok = os.path.exists(path) and os.path.getsize(path) == int(kv.get("size", "-1"))
            c.send("status 200" if ok else "status 404", FLUSH)
        elif cmd.startswith("get-object ") and operation == "download":
            oid = cmd.split()[1]
            path = os.path.join(store, oid)
            if not _OID.match(oid) or not os.path.exists(path):
                c.send("status 404", DELIM, "message not found", FLUSH)
                continue
            c.send("status 200", f"size={os.path.getsize(path)}", DELIM)
            with open(path, "rb") as f:
                while chunk := f.read(65516):
                    c.out.write(b"%04x" % (len(chunk) + 4) + chunk)
            c.send(FLUSH)
        else:
            if delim:
                c._lines()
            c.send("status 405", DELIM, f"message {cmd.split()[0]} not allowed for {operation}", FLUSH)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
