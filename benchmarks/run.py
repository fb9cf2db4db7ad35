"""Run every benchmark for this machine's kind, write its table into benchmarks/RESULTS.md, and exit 1
when a target that applies to this kind of machine is missed or a benchmark failed.

On a machine without a GPU: the CPU table (framework overhead, packed loader, cached-AMO step,
scorer, start-up at HGGT scale, plus the rows without a target: online AMO, HGGT-style loading, each
speed option that acts on the CPU). With a GPU: the GPU table (GAN steps of SwinIR-M and RRDB with the best
options against fp32 eager, TFLOP/s, peak memory, cached and online AMO against UPos, each speed
option alone). Each kind's table sits between its own markers in RESULTS.md; the rest of the file
(notes, experiments) is left as it is. The table is rewritten after every benchmark, and a failing
benchmark does not stop the others.

    python benchmarks/run.py [--kind cpu|gpu] [--quick] [--results benchmarks/RESULTS.md] [--rows-json F]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

from measurement import Measurement, Target, machine_description, machine_kind, today, versions

HERE = Path(__file__).resolve().parent


Benchmark = tuple[str, str, dict]  # module, function, keyword arguments


def cpu_benchmarks(quick: bool) -> list[Benchmark]:
    rounds = 1 if quick else None
    return [
        ("overhead_benchmark", "measure", {"rounds": 6 if quick else 60}),
        ("packed_loader_benchmark", "measure", {"rounds": rounds or 5}),
        ("sampler_step_benchmark", "measure", {"rounds": rounds or 7}),
        ("scorer_benchmark", "measure", {"rounds": rounds or 7}),
        ("scorer_benchmark", "measure", {"rounds": rounds or 5, "grid": "96:32"}),
        ("loader_benchmark", "measure", {"rounds": rounds or 5}),
        ("gpu_step_benchmark", "option_effects", {"steps": 3 if quick else 5, "rounds": rounds or 3}),
        ("startup_benchmark", "measure", {"sizes": [1000, 5000] if quick else [1000, 5000, 20000]}),
        ("eval_cache_benchmark", "measure", {"rounds": rounds or 3}),
    ]


def gpu_benchmarks(quick: bool, part: str = "all") -> list[Benchmark]:
    """The stage-1 steps first (part ``steps``: RRDB's, the first figure soonest, then SwinIR's, whose compilation
    is the longest), then (part ``others``) the samplers against UPos and each option alone: each in its own
    process, so that what finished is kept when a time limit stops the rest (gpu_check.sh runs the two parts
    apart, the GPU-only tests between them)."""
    steps, rounds = (5, 2) if quick else (10, 5)
    step_rows = [("gpu_step_benchmark", "measure", {"archs": [arch], "steps": steps, "rounds": rounds,
                                                    "what": ["step"]}) for arch in ("RRDB", "SwinIR")]
    other_rows = [("gpu_step_benchmark", "measure", {"archs": [arch], "steps": steps, "rounds": rounds,
                                                     "what": ["samplers"]}) for arch in ("RRDB", "SwinIR")]
    other_rows.append(("gpu_step_benchmark", "option_effects", {"steps": steps, "rounds": 2 if quick else 3}))
    return {"steps": step_rows, "others": other_rows, "all": step_rows + other_rows}[part]


ROWS_MARK = "benchmark rows: "


class BenchmarkFailed(Exception):
    pass


def run_isolated(benchmark: Benchmark) -> list[Measurement]:
    """Each benchmark in a fresh process: no threads, caches, compiled graphs or memory left by another."""
    module, function, kwargs = benchmark
    code = (f"import dataclasses, json, {module}\n"
            f"rows = {module}.{function}(**json.loads({json.dumps(json.dumps(kwargs))}))\n"
            f"print({ROWS_MARK!r} + json.dumps([dataclasses.asdict(row) for row in rows]), flush=True)")
    result = subprocess.run([sys.executable, "-c", code], cwd=HERE, stdout=subprocess.PIPE, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(ROWS_MARK)]
    if result.returncode != 0 or not lines:
        raise BenchmarkFailed(f"benchmark {module}.{function}({kwargs}) failed (exit {result.returncode})")
    return rows_from_json(lines[-1][len(ROWS_MARK):])


def rows_from_json(text: str) -> list[Measurement]:
    return [Measurement(**{**row, "target": Target(**row["target"]) if row["target"] else None})
            for row in json.loads(text)]


def table(rows: list[Measurement], kind: str, failures: list[str] = (), pending: int = 0) -> str:
    lines = [f"Written by `python benchmarks/run.py` on {today()}.", "",
             f"- machine: {machine_description()}", f"- versions: {versions()}", "",
             "| What | Baseline | sr_iqa | Ratio | Target | Settings |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.what} | {row.baseline} | {row.ours} | {row.ratio:.2f}x | {row.verdict(kind)} | "
                     f"{row.settings} |")
    lines += [""] * bool(failures or pending) + [f"- FAILED: {failure}" for failure in failures]
    if pending:
        lines.append(f"- not measured: {pending} benchmark(s) still to run when this table was written "
                     "(stopped by a time limit, or in progress)")
    return "\n".join(lines)


def write_section(results: Path, kind: str, body: str) -> None:
    """Replace this kind's section between its markers (appended when the file has none)."""
    start, end = f"<!-- run.py:{kind}:start -->", f"<!-- run.py:{kind}:end -->"
    section = f"{start}\n{body}\n{end}"
    text = results.read_text() if results.is_file() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + f"\n\n{section}\n"
    results.write_text(text)


def missed_targets(rows: list[Measurement], kind: str) -> list[Measurement]:
    """Rows whose target applies to this kind of machine and was not reached."""
    return [row for row in rows if row.target and row.target.machine == kind and not row.target.met(row.ratio)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["cpu", "gpu"], default=machine_kind())
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a check of the path, noisy figures")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--rows-json", type=Path, help="also write the rows as JSON (rewritten after each benchmark)")
    parser.add_argument("--part", choices=["all", "steps", "others"], default="all",
                        help="gpu: only the stage-1 steps, or only the rest (then the rows of the steps part "
                             "found in --rows-json stay in the table)")
    args = parser.parse_args()
    if args.kind == "gpu" and machine_kind() != "gpu":
        parser.error("--kind gpu needs a CUDA GPU")
    rows: list[Measurement] = []
    if args.part == "others" and args.rows_json is not None and args.rows_json.is_file():
        rows = rows_from_json(args.rows_json.read_text())
    failures: list[str] = []
    benchmarks = cpu_benchmarks(args.quick) if args.kind == "cpu" else gpu_benchmarks(args.quick, args.part)
    for done, benchmark in enumerate(benchmarks, start=1):
        try:
            new_rows = run_isolated(benchmark)
        except BenchmarkFailed as failure:  # the others still run: one failure must not lose their figures
            print(failure, file=sys.stderr, flush=True)
            failures.append(str(failure))
            new_rows = []
        for row in new_rows:
            print(f"{row.what}: {row.ratio:.2f}x  [{row.verdict(args.kind)}]", flush=True)
        rows += new_rows
        # Written after every benchmark, so that a run stopped by a time limit keeps what it measured.
        write_section(args.results, args.kind, table(rows, args.kind, failures, len(benchmarks) - done))
        if args.rows_json is not None:
            args.rows_json.write_text(json.dumps([dataclasses.asdict(row) for row in rows], indent=1))
    missed = missed_targets(rows, args.kind)
    for row in missed:
        print(f"MISSED: {row.what}: {row.ratio:.2f}x, target {row.target}", file=sys.stderr)
    print(f"wrote the {args.kind.upper()} table to {args.results}")
    return 1 if missed or failures else 0


if __name__ == "__main__":
    sys.exit(main())
