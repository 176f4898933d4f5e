"""Run every benchmark against our library and its peers, in one run, and report.

    python benchmarks/run.py                       # full run (~4 minutes on 2 cores)
    python benchmarks/run.py --quick               # smaller N (~2 minutes)
    python benchmarks/run.py --only noop,priority  # some workloads (or systems)
    python benchmarks/run.py --md benchmarks/results.md --json benchmarks/results.jsonl

Each (system, workload) pair runs in a child process of its own (a fresh interpreter, so
memory and state do not leak between pairs); the child warms up, collects the heap before
each timed run, and reports the median of ``--repeats`` runs. A system whose package is not
installed is reported as skipped. See ``benchmarks/README.md`` for what each workload
measures and the targets.

Child mode (one pair, printed as JSON lines; handy under a profiler)::

    python -m cProfile -s tottime benchmarks/run.py --child async_processor noop --repeats 1
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness import (
    BASELINES,
    MODULES,
    NOOP_SMALL,
    OURS,
    REFERENCE,
    SUPPORT,
    SYSTEMS,
    WORKDIR,
    WORKLOADS,
    Bench,
    Ctx,
    Record,
    peak_rss_mb,
)

HERE = Path(__file__).resolve().parent

#: "Flat across N" for the priority latency: the largest N's median may exceed the smallest
#: N's by less than this (a quarter of the 1 ms budget). An O(N) step would add far more:
#: 100x the tasks queued.
FLAT_MS = 0.25

#: Wall-clock limit for one (system, workload) child.
PAIR_TIMEOUT_S = {True: 300.0, False: 900.0}

# ===================================================================== child side


def run_child(system: str, workload: str, quick: bool, repeats: int) -> list[Record]:
    """Run one pair in this process and return its records."""
    ctx = Ctx(system, workload, quick, repeats)
    started = time.perf_counter()
    bench: Bench
    if system == OURS:
        import systems_ours

        bench = systems_ours.BENCHES[workload]
    else:
        import systems_peers

        bench = systems_peers.BENCHES[system][workload]
    records = asyncio.run(bench(ctx))
    elapsed = time.perf_counter() - started
    versions = _versions(system)
    for r in records:
        r.update(peak_rss_mb=peak_rss_mb(), pair_s=elapsed, versions=versions, quick=quick)
    return records


def _versions(system: str) -> dict[str, str]:
    dists = {
        OURS: ["async-processor"],
        "aiojobs": ["aiojobs"],
        "dask": ["dask", "distributed"],
        "ray": ["ray"],
    }.get(system, [])
    out = {"python": platform.python_version()}
    for dist in dists:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


# ===================================================================== parent side


def _installed(system: str) -> bool:
    try:
        return importlib.util.find_spec(MODULES[system]) is not None
    except (ImportError, ValueError):
        return False


def _stub(system: str, workload: str, status: str, note: str) -> Record:
    return {
        "kind": "result",
        "system": system,
        "workload": workload,
        "case": "",
        "status": status,
        "value": None,
        "note": note,
        "extra": {},
    }


def spawn_pair(system: str, workload: str, quick: bool, repeats: int) -> list[Record]:
    """Run one pair in a fresh interpreter; failures become records, never exceptions."""
    env = dict(os.environ)
    # The children (and their forkserver, Dask and Ray workers) import the task functions
    # from this directory.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONWARNINGS", "ignore")
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", dir=WORKDIR) as out:
        cmd = [
            sys.executable,
            str(HERE / "run.py"),
            "--child",
            system,
            workload,
            "--repeats",
            str(repeats),
            "--child-out",
            out.name,
        ]
        if quick:
            cmd.append("--quick")
        try:
            proc = subprocess.run(
                cmd,
                env=env,
                cwd=WORKDIR,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                timeout=PAIR_TIMEOUT_S[quick],
                check=False,
            )
        except subprocess.TimeoutExpired:
            return [_stub(system, workload, "error", f"timed out after {PAIR_TIMEOUT_S[quick]:g}s")]
        records = [json.loads(line) for line in out.read().splitlines() if line.strip()]
        if proc.returncode != 0 or not records:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            return [_stub(system, workload, "error", f"exit {proc.returncode}: {tail}")]
        return records


def plan(only: set[str], no_peers: bool) -> list[tuple[str, str]]:
    workloads = [w for w in WORKLOADS if not (only & set(WORKLOADS)) or w in only]
    systems = [s for s in SYSTEMS if not (only & set(SYSTEMS)) or s in only]
    if no_peers:
        systems = [s for s in systems if s == OURS or s in BASELINES]
    return [(w, s) for w in workloads for s in systems]


def run_all(args: argparse.Namespace) -> list[Record]:
    only = {x.strip() for x in (args.only or "").split(",") if x.strip()}
    unknown = only - set(WORKLOADS) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"--only: unknown name(s) {sorted(unknown)}; use {', '.join(WORKLOADS)}")
    os.makedirs(WORKDIR, exist_ok=True)
    jsonl = open(args.json, "w", encoding="utf-8") if args.json else None  # noqa: SIM115
    records: list[Record] = []
    meta = {
        "kind": "meta",
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "repeats": args.repeats,
        "argv": sys.argv[1:],
    }
    records.append(meta)
    began = time.monotonic()
    try:
        if jsonl:
            jsonl.write(json.dumps(meta) + "\n")
        for workload, system in plan(only, args.no_peers):
            reason = SUPPORT[workload][system]
            if reason is not None:
                got = [_stub(system, workload, "n/a", reason)]
            elif not _installed(system):
                got = [_stub(system, workload, "skipped", f"{MODULES[system]} is not installed")]
            else:
                t0 = time.monotonic()
                print(
                    f"[{time.monotonic() - began:6.0f}s] {workload:<9} {system} ...",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
                got = spawn_pair(system, workload, args.quick, args.repeats)
                status = ", ".join(sorted({r["status"] for r in got}))
                print(f" {time.monotonic() - t0:.1f}s ({status})", file=sys.stderr, flush=True)
                for r in got:
                    if r["status"] == "error":
                        print(f"    error: {r['note']}", file=sys.stderr)
            records.extend(got)
            if jsonl:
                for r in got:
                    jsonl.write(json.dumps(r) + "\n")
                jsonl.flush()
        meta["elapsed_s"] = round(time.monotonic() - began, 1)
        if jsonl:
            jsonl.write(json.dumps({"kind": "end", "elapsed_s": meta["elapsed_s"]}) + "\n")
    finally:
        if jsonl:
            jsonl.close()
    return records


# ===================================================================== report


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    ratio: float | None
    met: bool | None


def _ok(records: Iterable[Record]) -> dict[tuple[str, str, str], Record]:
    return {
        (r["workload"], r["case"], r["system"]): r
        for r in records
        if r.get("kind") == "result" and r["status"] == "ok"
    }


def _value(cells: dict[tuple[str, str, str], Record], w: str, c: str, s: str) -> float | None:
    r = cells.get((w, c, s))
    return None if r is None else r["value"]


def targets(records: list[Record]) -> list[Target]:
    cells = _ok(records)
    out: list[Target] = []

    for case in ("", f"n={NOOP_SMALL:,}"):
        ours = _value(cells, "noop", case, OURS)
        raw = _value(cells, "noop", case, "asyncio")
        if ours is None:
            continue
        ratio = raw / ours if raw else None
        n = cells[("noop", case, OURS)]["n"]
        out.append(
            Target(
                f"noop: our rate vs raw asyncio's ({n:,} tasks)",
                ">= 0.5x",
                f"{ours:.2f} vs {raw:.2f} us/task" if raw else f"{ours:.2f} us/task (no asyncio)",
                ratio,
                None if ratio is None else ratio >= 0.5,
            )
        )
    noop = _value(cells, "noop", "", OURS)
    for w in ("chain", "fanin"):
        ours = _value(cells, w, "", OURS)
        if ours is not None:
            ratio = ours / noop if noop else None
            out.append(
                Target(
                    f"{w}: per-task time vs our noop",
                    "<= 1.5x",
                    f"{ours:.2f} vs {noop:.2f} us/task" if noop else f"{ours:.2f} us/task",
                    ratio,
                    None if ratio is None else ratio <= 1.5,
                )
            )
    prio = sorted(
        (r for (w, _, s), r in cells.items() if w == "priority" and s == OURS),
        key=lambda r: r["n"],
    )
    for r in prio:
        out.append(
            Target(
                f"priority: CRITICAL start latency, {r['n']:,} queued",
                "<= 1 ms median",
                f"{r['value']:.3f} ms (max {r['extra']['max_ms']:.3f})",
                None,
                r["value"] <= 1.0,
            )
        )
    if len(prio) > 1:
        lo, hi = prio[0]["value"], prio[-1]["value"]
        ratio = hi / lo if lo > 0 else math.inf
        floor = sorted(
            (r for (w, _, s), r in cells.items() if w == "priority" and s == "asyncio"),
            key=lambda r: r["n"],
        )
        versus = ""
        if len(floor) > 1 and floor[0]["value"] > 0:
            versus = f"; asyncio floor {_ratio(floor[-1]['value'] / floor[0]['value'])}"
        out.append(
            Target(
                f"priority: flat across N ({prio[0]['n']:,} -> {prio[-1]['n']:,} queued)",
                f"grows < {FLAT_MS:g} ms",
                f"{lo:.3f} -> {hi:.3f} ms (+{hi - lo:.3f} ms{versus})",
                ratio,
                hi - lo < FLAT_MS,
            )
        )
    for case, goal, faster in (
        ("cpu", 1.5, False),
        ("bytes 1 MiB", 5.0, True),
        ("numpy 1 MiB", 5.0, True),
    ):
        ours = _value(cells, "process", case, OURS)
        pool = _value(cells, "process", case, "concurrent.futures")
        if ours is None:
            continue
        if faster:
            ratio = pool / ours if pool else None
            name, g = f"process {case}: ProcessPoolExecutor time / ours", f">= {goal:g}x"
            met = None if ratio is None else ratio >= goal
        else:
            ratio = ours / pool if pool else None
            name, g = f"process {case}: ours / ProcessPoolExecutor", f"<= {goal:g}x"
            met = None if ratio is None else ratio <= goal
        measured = f"{ours:.1f} vs {pool:.1f} us/task" if pool else f"{ours:.1f} us/task"
        out.append(Target(name, g, measured, ratio, met))
    mem = cells.get(("memory", "rss growth after window", OURS))
    if mem is not None:
        e = mem["extra"]
        peak = e["rss_at_fill_mb"] * (1 + mem["value"] / 100)
        out.append(
            Target(
                f"memory: RSS growth from the fill ({e['max_results']:,} results retained)",
                "<= 10 %",
                f"{e['rss_at_fill_mb']:.1f} -> max {peak:.1f} MB ({mem['value']:+.1f} %; "
                f"from one window later: {e['growth_after_second_window_pct']:+.1f} %; "
                f"Python heap blocks {e['blocks_growth_pct']:+.1f} %)",
                None,
                mem["value"] <= 10.0,
            )
        )
    per = cells.get(("memory", "bytes per retained result", OURS))
    if per is not None:
        out.append(
            Target(
                "memory: bytes per retained result (tracemalloc)",
                "< 2048 B",
                f"{per['value']:.0f} B (RSS delta: "
                f"{per['extra']['rss_delta_bytes_per_result']:.0f} B)",
                None,
                per["value"] < 2048,
            )
        )
    return out


def _fmt(value: float, unit: str) -> str:
    if unit == "us/task":
        return f"{value:.1f} µs" if value < 100 else f"{value:.0f} µs"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 10 else f"{value:,.0f} ms"
    if unit == "%":
        return f"{value:+.1f} %"
    if unit == "B":
        return f"{value:.0f} B"
    return f"{value:g} {unit}"


def _ratio(x: float) -> str:
    return f"{x:.2f}x" if x < 10 else f"{x:.0f}x"


def render(records: list[Record]) -> str:
    meta = next((r for r in records if r.get("kind") == "meta"), {})
    results = [r for r in records if r.get("kind") == "result"]
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in results)]
    lines = [
        f"Run {meta.get('started', '?')}; Python {meta.get('python', '?')}; "
        f"{meta.get('cpus', '?')} CPUs; {'quick' if meta.get('quick') else 'full'} sizes; "
        f"median of {meta.get('repeats', '?')} runs (priority: median of "
        f"max(5, repeats) trials); total {meta.get('elapsed_s', '?')} s.",
        "",
        "Cell = value (x = ratio to the row's reference system, marked *) [n = tasks per run "
        "when it differs from ours]. Per-task rows: wall time per task including create, "
        "submit, run and result. Priority: ms from submitting the CRITICAL task until it "
        "starts.",
        "",
        "| workload | case | "
        + " | ".join(
            s + (" *" if any(REFERENCE[w] == s for w in WORKLOADS if w != "memory") else "")
            for s in systems
        )
        + " |",
        "|---|---|" + "---|" * len(systems),
    ]
    by_key: dict[tuple[str, str], dict[str, Record]] = {}
    stubs: dict[tuple[str, str], Record] = {}
    for r in results:
        if r["status"] in ("ok", "capped"):
            by_key.setdefault((r["workload"], r["case"]), {})[r["system"]] = r
        else:
            stubs[(r["workload"], r["system"])] = r
    order = {w: i for i, w in enumerate(WORKLOADS)}
    first_seen = {key: i for i, key in enumerate(by_key)}

    def row_order(key: tuple[str, str]) -> tuple[int, int, int]:
        w, case = key
        n = int(case[2:]) if w == "priority" and case.startswith("N=") else 0
        return (order[w], n, first_seen[key])

    for w, case in sorted(by_key, key=row_order):
        row = by_key[(w, case)]
        if w == "memory":
            continue
        ref = row.get(REFERENCE[w])
        ours_n = row[OURS]["n"] if OURS in row else None
        cells = []
        for s in systems:
            cell = row.get(s)
            if cell is None:
                stub = stubs.get((w, s))
                cells.append("" if stub is None else stub["status"])
                continue
            if cell["status"] == "capped":
                cells.append("capped")
                continue
            text = _fmt(cell["value"], cell["unit"])
            if ref is not None and ref is not cell and ref["value"]:
                text += f" ({_ratio(cell['value'] / ref['value'])})"
            if ours_n is not None and cell["n"] != ours_n and w != "priority":
                text += f" [n={cell['n']:,}]"
            cells.append(text)
        label = case or "-"
        if w in ("noop", "chain", "fanin") and ours_n and not case:
            label = f"n={ours_n:,}"
        lines.append(f"| {w} | {label} | " + " | ".join(cells) + " |")

    phases = [
        f"- {r['n']:,} tasks: "
        + ", ".join(f"{k} {v:.1f}" for k, v in r["extra"]["phases_us"].items())
        for r in results
        if r["system"] == OURS and r["workload"] == "noop" and "phases_us" in r["extra"]
    ]
    if phases:
        lines += ["", "Our noop by phase (µs/task, median run):", "", *phases]

    tgt = targets(records)
    if tgt:
        lines += [
            "",
            "### Targets",
            "",
            "| target | goal | measured | ratio | met |",
            "|---|---|---|---|---|",
        ]
        for t in tgt:
            ratio = "" if t.ratio is None else _ratio(t.ratio)
            met = "?" if t.met is None else ("yes" if t.met else "**NO**")
            lines.append(f"| {t.name} | {t.goal} | {t.measured} | {ratio} | {met} |")

    mem = next(
        (
            r
            for r in results
            if r["workload"] == "memory"
            and r["status"] == "ok"
            and r["case"] == "rss growth after window"
        ),
        None,
    )
    if mem is not None:
        e = mem["extra"]
        lines += [
            "",
            f"### Memory: RSS across {mem['n']:,} no-op tasks (batches of 10,000; "
            f"result_ttl=3600, max_results={e['max_results']:,}; "
            f"{e['us_per_task']:.1f} µs/task)",
            "",
            "| tasks done | RSS MB | retained results | Python heap blocks |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {int(t):,} | {rss:.1f} | {int(k):,} | {int(b):,} |" for t, rss, k, b in e["samples"]
        ]

    notes = [r for r in results if r["status"] in ("skipped", "error", "capped")]
    if notes:
        lines += ["", "Skipped, failed or capped:", ""]
        for r in notes:
            note = r.get("note") or r["extra"].get("note", "")
            case = f" {r['case']}" if r["case"] else ""
            lines.append(f"- {r['system']} / {r['workload']}{case}: {r['status']}: {note}")
    versions: dict[str, str] = {}
    for r in results:
        versions.update(r.get("versions", {}))
    peaks: dict[str, float] = {}
    for r in results:
        if "peak_rss_mb" in r:
            peaks[r["system"]] = max(peaks.get(r["system"], 0.0), r["peak_rss_mb"])
    if versions:
        lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))]
    if peaks:
        lines.append(
            "Peak driver RSS (max over workloads): "
            + ", ".join(f"{s} {mb:.0f} MB" for s, mb in peaks.items())
        )
    spreads = [
        (r["extra"]["spread"], r["system"], r["workload"], r["case"])
        for r in results
        if r["status"] == "ok" and "spread" in r["extra"]
    ]
    if spreads:
        worst = max(spreads)
        lines.append(
            f"Worst run spread (max-min)/median: {worst[0] * 100:.0f} % "
            f"({' '.join(worst[1:]).strip()}); median spread "
            f"{statistics.median(s[0] for s in spreads) * 100:.0f} %."
        )
    return "\n".join(lines) + "\n"


# ===================================================================== main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller N (about 2 minutes)")
    ap.add_argument("--only", metavar="NAME[,NAME]", help="workloads and/or systems to run")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median)")
    ap.add_argument(
        "--no-peers",
        action="store_true",
        help="drop aiojobs, Dask and Ray (the stdlib baselines stay: targets are ratios to them)",
    )
    ap.add_argument("--md", metavar="FILE", help="also write the report as Markdown")
    ap.add_argument("--json", metavar="FILE", help="also write every record as JSON lines")
    ap.add_argument(
        "--report", metavar="JSONL", help="render an existing --json file instead of running"
    )
    ap.add_argument("--child", nargs=2, metavar=("SYSTEM", "WORKLOAD"), help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")

    if args.child:
        system, workload = args.child
        records = run_child(system, workload, args.quick, args.repeats)
        text = "".join(json.dumps(r) + "\n" for r in records)
        if args.child_out:
            Path(args.child_out).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0

    if args.report:
        records = [json.loads(x) for x in Path(args.report).read_text().splitlines() if x.strip()]
        end = next((r for r in records if r.get("kind") == "end"), None)
        for r in records:
            if r.get("kind") == "meta" and end is not None:
                r.setdefault("elapsed_s", end["elapsed_s"])
    else:
        records = run_all(args)
    report = render(records)
    print(report)
    if args.md:
        title = "# async_processor benchmarks\n\n"
        cmd = "Command: `python benchmarks/run.py " + " ".join(sys.argv[1:]) + "`\n\n"
        Path(args.md).write_text(title + cmd + report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
