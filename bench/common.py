"""Helpers shared by the benchmark scripts (``bench.tokenizer``, ``bench.training``,
``bench.http`` and ``bench.train_http``).

* CPU accounting: the machine's busy CPU seconds (``/proc/stat``), a process's own
  (``/proc/PID/stat``), and the share of the CPUs that *other* processes took meanwhile, with
  the warning every script prints when that share passes ``CONTENTION_WARNING``;
* the description of the machine and of the software measured;
* the command line: ``--data-dir`` and the "at least 1" checks, and the corpus file check;
* the report: fixed-width tables, the alternating order of the contenders in each round and
  the run-to-run spread.

Linux only for the CPU accounting: elsewhere the shares read ``n/a``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Literal

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPOSITORY_ROOT.parent / "shared" / "data"
# Other processes' share of all cores above which a timed run counts as disturbed.
CONTENTION_WARNING = 0.10


# --- CPU accounting ------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSample:
    """A moment's wall clock, machine-wide busy CPU seconds and this process's CPU usage."""

    wall: float
    machine_busy: float | None
    own: float
    own_system: float
    minor_page_faults: int


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores have spent busy since boot (``/proc/stat``: all but idle and
    iowait); None where that file cannot be read (not Linux)."""
    try:
        fields = [
            int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
        ]
        idle = fields[3] + fields[4]  # idle + iowait
    except (OSError, ValueError, IndexError):
        return None
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def sample_cpu() -> CpuSample:
    """The wall clock, the machine's busy CPU seconds (None where ``/proc/stat`` is missing),
    and this process's CPU seconds, system CPU seconds and minor page faults."""
    machine_busy = machine_busy_seconds()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return CpuSample(
        wall=time.perf_counter(),
        machine_busy=machine_busy,
        own=time.process_time(),
        own_system=usage.ru_stime,
        minor_page_faults=usage.ru_minflt,
    )


def unaccounted_cpu_share(
    busy_seconds: float, accounted_seconds: float, wall_seconds: float
) -> float | None:
    """Share of all cores busy for ``busy_seconds`` machine-wide over ``wall_seconds``, less
    the ``accounted_seconds`` of the processes being measured: what *other* processes took.

    Never below 0 (the counters tick at different moments); None for an empty interval.
    """
    capacity = wall_seconds * (os.cpu_count() or 1)
    if capacity <= 0:
        return None
    return max(0.0, (busy_seconds - accounted_seconds) / capacity)


def others_cpu_share(before: CpuSample, after: CpuSample) -> float | None:
    """Share of all cores that *other* processes kept busy between two samples."""
    if before.machine_busy is None or after.machine_busy is None:
        return None
    return unaccounted_cpu_share(
        after.machine_busy - before.machine_busy, after.own - before.own, after.wall - before.wall
    )


def process_stat_fields(process_id: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, so that field ``n`` of proc(5)
    is at index ``n - 3`` (state first); None where the process or the file is missing."""
    try:
        return Path(f"/proc/{process_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def format_share(share: float | None) -> str:
    """A CPU share as a whole percentage, or ``n/a``."""
    return "n/a" if share is None else f"{share:.0%}"


def warn_if_contended(worst_share: float, during: str = "a run") -> None:
    """Print a warning when other processes took more than ``CONTENTION_WARNING`` of the CPUs
    during any timed ``during`` ("a run", "a pass")."""
    if worst_share > CONTENTION_WARNING:
        print(
            f"WARNING: other processes used up to {worst_share:.0%} of the CPUs during {during}; "
            "the timings may be disturbed — rerun on an idle machine"
        )


# --- the machine ---------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from ``lscpu``, else ``platform.processor()``."""
    model = platform.processor() or "unknown CPU"
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return model
    for line in listing.splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    return model


def machine_description(packages: Iterable[str]) -> str:
    """``CPU model, N cores; python X, package version, …`` for the installed ``packages``."""
    versions = "".join(f", {package} {version(package)}" for package in packages)
    return f"{cpu_model()}, {os.cpu_count()} cores; python {platform.python_version()}{versions}"


# --- the command line and the data ---------------------------------------------------------


def add_data_dir_argument(parser: argparse.ArgumentParser, holding: str) -> None:
    """``--data-dir``, the folder of the shared data sets (``holding`` names what it must hold)."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"folder holding {holding} (default: ../shared/data from the repo)",
    )


def require_at_least_one(
    parser: argparse.ArgumentParser, arguments: argparse.Namespace, names: Iterable[str]
) -> None:
    """Stop with a usage error when any of the named arguments is below 1."""
    for name in names:
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")


def require_corpus(path: Path) -> Path:
    """``path`` if it is a file; otherwise exit with a hint at ``--data-dir``."""
    if not path.is_file():
        sys.exit(f"error: corpus not found: {path} (pass --data-dir pointing at shared/data)")
    return path


# --- the report ----------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Fixed-width columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[index]) for row in [headers, *rows]) for index in range(len(headers))]

    def format_row(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells)

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([format_row(headers), rule, *(format_row(row) for row in rows)])


def round_order(contenders: Sequence[str], round_number: int) -> list[str]:
    """The contenders in their order in odd rounds and reversed in even ones (a b / b a / …),
    so that none always goes first."""
    return list(contenders) if round_number % 2 == 1 else list(reversed(contenders))


def spread(
    values: Iterable[float], relative_to: Literal["smallest", "largest"] = "smallest"
) -> float:
    """(largest - smallest) / smallest (or / largest) of one contender's rounds: the
    run-to-run noise. Seconds are taken relative to the fastest (the smallest), rates
    relative to the fastest (the largest)."""
    values = list(values)
    largest, smallest = max(values), min(values)
    return (largest - smallest) / (smallest if relative_to == "smallest" else largest)
