"""The hosts' own storage meters, read through their REST APIs (``lfsreg usage``).

Each host documents one place where a token can read what it counts (researched 2026-11-30,
docs/limits.md):

- GitLab: ``GET /api/v4/projects/:id?statistics=true`` → ``statistics.lfs_objects_size``,
  ``repository_size``, ``storage_size`` (bytes); needs the Reporter role and a token with
  ``read_api``; without them the answer has no ``statistics`` (or is a 401/403/404).
- Forgejo (quotas enabled): ``GET /api/v1/user/quota`` → ``used.size.git.LFS`` and the
  quota groups' limits; needs a token with the ``read:user`` scope.
- GitHub: ``GET /users/{user}/settings/billing/usage`` → ``usageItems`` with ``product`` and
  ``sku``, ``quantity``, ``unitType``; product ``git_lfs``; needs a classic token with the
  ``user`` scope or a fine-grained one with "Plan" read. There is no per-repository LFS meter.

Every answer is optional: a refusal becomes a ``missing`` line naming the permission it
needs, never an error of the command. No answer is trusted beyond its documented fields.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from ..errors import ProtocolError, UnreachableError, tls_error

log = logging.getLogger(__name__)
MAX_BODY = 4 << 20
KINDS = ("github", "gitlab", "forgejo")


@dataclass(frozen=True, slots=True)
class Meter:
    """One number a host reports: what it measures, its value and unit (``bytes`` unless said)."""

    name: str
    value: float
    unit: str = "bytes"


@dataclass(slots=True)
class HostMeters:
    """What a host's API said: its meters, and what could not be read with the permission it needs."""

    kind: str
    api_url: str
    meters: list[Meter] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ApiAccess:
    """How to reach a host's API: base URL, token (may be empty), TLS and timeout."""

    api_url: str
    token: str = field(default="", repr=False)
    ca_bundle: str | None = None
    verify_tls: bool = True
    timeout: float = 30.0


def _get(access: ApiAccess, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    """``(status, JSON body or None)`` of ``GET api_url + path``; network failures raise lfsreg errors."""
    url = access.api_url.rstrip("/") + path
    verify: bool | str = access.ca_bundle or True if access.verify_tls else False
    session = requests.Session()
    session.trust_env = False  # no ~/.netrc: the token goes only where it is meant to
    try:
        with session.get(url, headers=headers, timeout=access.timeout, verify=verify, stream=True, allow_redirects=False) as resp:
            body = resp.raw.read(MAX_BODY + 1, decode_content=True)
            status = resp.status_code
    except requests.RequestException as exc:
        host = url.split("//", 1)[-1].split("/", 1)[0]
        raise tls_error(exc, f"{access.api_url}: usage API", host) or UnreachableError(
            f"{access.api_url}: usage API not reachable: {type(exc).__name__}"
        ) from None
    finally:
        session.close()
    try:
        return status, json.loads(body) if body and len(body) <= MAX_BODY else None
    except (ValueError, RecursionError):
        return status, None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None


def _refused(status: int, what: str, needs: str) -> str:
    return f"{what}: HTTP {status}; it needs {needs}"


def gitlab(access: ApiAccess, project: str) -> HostMeters:
    """A GitLab project's storage statistics (``project`` is ``group/name``)."""
    out = HostMeters("gitlab", access.api_url)
    needs = "a token with the read_api scope and at least the Reporter role on the project"
    headers = {"PRIVATE-TOKEN": access.token} if access.token else {}
    status, body = _get(access, f"/projects/{quote(project, safe='')}?statistics=true", headers)
    if status != 200:
        out.missing.append(_refused(status, f"project {project} statistics", needs))
        return out
    stats = body.get("statistics") if isinstance(body, dict) else None
    if not isinstance(stats, dict):
        out.missing.append(f"project {project} statistics: not in the answer; it needs {needs}")
        return out
    for key, name in (
        ("lfs_objects_size", "LFS objects"),
        ("repository_size", "git repository"),
        ("storage_size", "project storage (counts against the 10 GiB of GitLab.com Free)"),
    ):
        value = _number(stats.get(key))
        if value is not None:
            out.meters.append(Meter(name, value))
    return out


def forgejo(access: ApiAccess) -> HostMeters:
    """The token owner's quota use on a Forgejo instance (quotas must be enabled there)."""
    out = HostMeters("forgejo", access.api_url)
    headers = {"Authorization": f"token {access.token}"} if access.token else {}
    status, body = _get(access, "/user/quota", headers)
    if status != 200:
        out.missing.append(_refused(status, "user quota", "a token with the read:user scope (and quotas enabled on the instance)"))
        return out
    used = body.get("used", {}).get("size", {}) if isinstance(body, dict) and isinstance(body.get("used"), dict) else {}
    git = used.get("git", {}) if isinstance(used, dict) else {}
    lfs = _number(git.get("LFS")) if isinstance(git, dict) else None
    if lfs is not None:
        out.meters.append(Meter("LFS objects (all of the user's repositories)", lfs))
    repos = used.get("repos", {}) if isinstance(used, dict) else {}
    if isinstance(repos, dict):
        total = sum(v for v in (_number(repos.get("public")), _number(repos.get("private"))) if v is not None)
        out.meters.append(Meter("git repositories", total))
    for group in body.get("groups", []) if isinstance(body, dict) and isinstance(body.get("groups"), list) else []:
        for rule in group.get("rules", []) if isinstance(group, dict) and isinstance(group.get("rules"), list) else []:
            limit = _number(rule.get("limit")) if isinstance(rule, dict) else None
            if limit is not None and rule.get("limit", -1) >= 0:
                subjects = ", ".join(str(s) for s in rule.get("subjects", []) if isinstance(s, str))
                out.meters.append(Meter(f"quota {rule.get('name', '?')} ({subjects})", limit))
    if not out.meters:
        out.missing.append("user quota: the answer named no LFS use (are quotas enabled on the instance?)")
    return out


def github(access: ApiAccess, user: str) -> HostMeters:
    """The Git LFS lines of a GitHub account's billing usage (the current period)."""
    out = HostMeters("github", access.api_url)
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if access.token:
        headers["Authorization"] = f"Bearer {access.token}"
    status, body = _get(access, f"/users/{quote(user, safe='')}/settings/billing/usage", headers)
    if status == 404:  # an organisation's repository: its billing is the organisation's
        status, body = _get(access, f"/organizations/{quote(user, safe='')}/settings/billing/usage", headers)
    if status != 200:
        needs = "a classic token with the user scope, or a fine-grained token with Plan: read (an organisation's: Administration: read)"
        out.missing.append(_refused(status, f"billing usage of {user}", needs))
        return out
    items = body.get("usageItems") if isinstance(body, dict) else None
    if not isinstance(items, list):
        out.missing.append(f"billing usage of {user}: no usageItems in the answer")
        return out
    totals: dict[tuple[str, str], float] = {}
    for item in items:
        if not isinstance(item, dict) or str(item.get("product", "")).lower().replace(" ", "_") != "git_lfs":
            continue
        quantity = _number(item.get("quantity"))
        if quantity is not None:
            key = (str(item.get("sku") or "git_lfs"), str(item.get("unitType") or ""))
            totals[key] = totals.get(key, 0.0) + quantity
    out.meters.extend(Meter(f"{sku} (billing period so far)", value, unit or "units") for (sku, unit), value in sorted(totals.items()))
    if not out.meters:
        out.meters.append(Meter("git_lfs (no usage this billing period)", 0.0, "units"))
    return out


def read(kind: str, access: ApiAccess, *, project: str = "", user: str = "") -> HostMeters:
    """The meters of a host of ``kind`` (``github``: ``user`` needed; ``gitlab``: ``project``)."""
    if kind == "gitlab":
        return gitlab(access, project)
    if kind == "forgejo":
        return forgejo(access)
    if kind == "github":
        return github(access, user)
    raise ProtocolError(f"no usage API known for {kind!r}")


__all__ = ["KINDS", "ApiAccess", "HostMeters", "Meter", "read"]
