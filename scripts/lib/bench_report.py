"""Figures of a benchmark run: each figure as its median with the spread
(min-max) of the runs, and the closing JSON line (the last line a
benchmark prints) that scripts compare runs by.

Imported by the benchmarks' report steps; scripts/lib/bench.sh puts this
folder on PYTHONPATH and exports the machine's cores and load at start.
"""

import json
import os
import statistics


def spread(values, digits=3):
    """Median, min, max and run count of `values`."""
    values = [float(v) for v in values]
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": len(values),
    }


def text(values, digits=1, unit=""):
    """'median unit (min-max)' for a table."""
    s = spread(values, digits + 2)
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def median(values):
    return statistics.median(float(v) for v in values)


def emit(bench, figures):
    """Prints the closing JSON line: the bench's name, the command that ran
    it, the machine, its figures. Also keeps it in target/bench/BENCH.json,
    where bench/readme.py reads it to write README's performance section."""
    line = {
        "bench": bench,
        "command": os.environ.get("BENCH_COMMAND", ""),
        "cores": int(os.environ.get("BENCH_CORES", os.cpu_count() or 0)),
        "load_at_start": [float(x) for x in os.environ.get("BENCH_LOAD", "0 0 0").split()],
        **figures,
    }
    text_line = json.dumps(line, separators=(",", ":"))
    folder = os.path.join(os.environ.get("REPO_ROOT", "."), "target", "bench")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{bench}.json"), "w") as kept:
        kept.write(text_line + "\n")
    print(text_line)
