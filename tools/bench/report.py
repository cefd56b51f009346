"""The one report of a run: the step table, the revisions side by side, ratios and targets, failures; and its JSON."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.bench.runner import MIB
from tools.bench.session import Session

RSS_LIMIT_MB = 200.0  # peak RSS of every lfsreg command (MB = 10^6 bytes)


@dataclass
class Check:
    """One line of "ratios and targets": ``met`` is None for information or when not measured."""

    name: str
    value: str
    target: str = "info"
    met: bool | None = None
    note: str = ""

    @property
    def status(self) -> str:
        return "n/a" if self.met is None else "met" if self.met else "NOT met"


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def ratio(s: Session, name: str, num: str, den: str, target: float | None = None) -> Check:
    """``num`` / ``den`` (median seconds of two steps), at most ``target`` if one is given."""
    n, d = s.seconds(num), s.seconds(den)
    tgt = f"<= {target:.2f}x" if target else "info"
    if n is None or d is None or d <= 0:
        return Check(name, "-", tgt, None, "not measured" if num not in s.r.steps or den not in s.r.steps else "failed/skipped")
    return Check(name, f"{n / d:.2f}x ({n:.2f}/{d:.2f} s)", tgt, (n / d <= target) if target else None)


def at_most(s: Session, name: str, key: str, limit_s: float | None) -> Check:
    v = s.seconds(key)
    return Check(name, _f(v, "{:.3f} s"), f"<= {limit_s:.1f} s" if limit_s else "info", None if v is None or not limit_s else v <= limit_s)


def passed(s: Session, name: str, key: str) -> Check | None:
    """Whether an untimed verification step passed (None when it never ran)."""
    step = s.r.steps.get(key)
    if step is None or not step.runs:
        return None
    return Check(name, "ok" if step.ok else "FAILED", "ok", step.ok)


def _header(s: Session) -> list[str]:
    m = s.meta
    lines = ["=" * 110, f"lfsreg benchmark: {' + '.join(m['scenarios'])}"]
    lines.append(f"  date {m['date']}  host {m['host']}  cpus {m['cpus']}  python {m['python']}  reps {s.a.reps} (median)")
    lines += [f"  {k:16s} {v}" for k, v in m["versions"].items()]
    for lr in m.get("lfsregs", []):
        lines.append(f"  lfsreg {lr['name']:9s} {lr['commit'][:12] or 'working tree'} (imports {lr['source']})")
    if "image" in m:
        lines.append(f"  image {m['image']['ref']}: {m['image']['bytes'] / MIB:.1f} MiB docker-archive, {m['image']['layers']} layers")
    la0, la1 = m["loadavg_start"], m.get("loadavg_end", m["loadavg_start"])
    lines.append(f"  load average {la0[0]:.2f} at start, {la1[0]:.2f} at end; logs {s.r.logdir}")
    return [*lines, ""]


def _table(s: Session) -> list[str]:
    hdr = f"{'step':64s} {'time s':>9s} {'MiB/s':>7s} {'peakRSS MB':>10s}  status"
    lines, group = [hdr, "-" * len(hdr)], None
    for st in s.r.steps.values():
        if st.group != group:
            lines.append(f"[{st.group}]")
            group = st.group
        secs = st.seconds
        rate = st.nbytes / MIB / secs if st.nbytes and secs else None
        if st.skipped:
            status = f"skipped ({st.skipped})"
        elif not st.runs:
            status = "not run"
        else:
            status = "ok" + (f" x{len(st.runs)}" if len(st.runs) > 1 else "") if st.ok else "FAILED"
        label = ("    " if st.indent else "  ") + st.label
        lines.append(f"{label[:64]:64s} {_f(secs, '{:.3f}'):>9s} {_f(rate, '{:.0f}'):>7s} {_f(st.maxrss_mb, '{:.0f}'):>10s}  {status}")
    return [*lines, ""]


def _side_by_side(s: Session) -> list[str]:
    """Every step run by several revisions: the time of each and its ratio to the working tree's."""
    if len(s.lfsregs) < 2:
        return []
    names = [lr.name for lr in s.lfsregs]
    hdr = f"  {'step':58s}" + "".join(f" {n[:12]:>12s}" for n in names) + "".join(f" {'work/' + n[:7]:>13s}" for n in names[1:])
    lines = ["lfsreg revisions side by side (median seconds; ratio < 1: the working tree is faster)", hdr]
    for key, st in s.r.steps.items():
        if st.rev != "work" or "untimed" in st.label:
            continue
        base = key.rsplit("@", 1)[0]
        secs = [s.seconds(f"{base}@{n}") for n in names]
        ratios = [f"{secs[0] / x:.2f}x" if secs[0] is not None and x else "-" for x in secs[1:]]
        label = f"{st.group}: {st.label.rsplit(' [', 1)[0]}"
        lines.append(f"  {label[:58]:58s}" + "".join(f" {_f(x, '{:.3f}'):>12s}" for x in secs) + "".join(f" {r:>13s}" for r in ratios))
    return [*lines, ""]


def checks(s: Session, scenario_checks: list[Check]) -> list[Check]:
    out = list(scenario_checks)
    for st in s.r.steps.values():
        if st.lfsreg and st.runs and st.maxrss_mb is not None:
            mb = st.maxrss_mb
            out.append(Check(f"peak RSS: {st.group}: {st.label}", f"{mb:.0f} MB", f"< {RSS_LIMIT_MB:.0f} MB", mb < RSS_LIMIT_MB))
    return out


def render(s: Session, extra_lines: list[str], all_checks: list[Check]) -> str:
    lines = _header(s) + _table(s) + extra_lines + _side_by_side(s)
    if all_checks:
        lines.append("ratios and targets")
        lines += [
            f"  {c.name[:66]:66s} {c.value:>28s} {c.target:>12s}  {c.status}" + (f" ({c.note})" if c.note else "") for c in all_checks
        ]
        lines.append("")
    lines.append(f"FAILURES ({len(s.r.failures)})" if s.r.failures else "no failures")
    for f in s.r.failures:
        lines.append(f"  * {f.step}: {f.error}" + (f"\n    command: {f.cmd}" if f.cmd else "") + (f"\n    log: {f.log}" if f.log else ""))
        lines += [f"    | {x}" for x in f.detail.splitlines()]
    return "\n".join([*lines, "=" * 110])


def write(s: Session, text: str, all_checks: list[Check], json_path: str | None) -> None:
    """Save the report and the JSON in the log directory (and the JSON at ``json_path``)."""
    (s.r.logdir / "report.txt").write_text(text + "\n")
    data = {"meta": s.meta, "args": vars(s.a), **s.r.to_json(), "checks": [asdict(c) | {"status": c.status} for c in all_checks]}
    data["scenarios"] = s.data
    blob = json.dumps(data, indent=1, default=str)
    (s.r.logdir / "results.json").write_text(blob + "\n")
    if json_path:
        Path(json_path).write_text(blob + "\n")


def load_line(s: Session) -> str:
    return f"machine load average {os.getloadavg()[0]:.2f}; {s.meta['cpus']} cpus shared by client and servers"
