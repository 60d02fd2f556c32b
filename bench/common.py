"""Helpers shared by the benchmark scripts (``bench.tokenizer``, ``bench.training``,
``bench.http`` and ``bench.train_http``; the uvicorn harness is ``bench.servers``).

* CPU accounting: the machine's busy CPU seconds (``/proc/stat``); this process's CPU seconds,
  with or without its waited-for children's (``getrusage``); another process's, with its
  waited-for children's, system seconds and page faults (``/proc/PID/stat``); a sample of a
  moment, the share of the CPUs that *other* processes took between two samples, and the
  warning every script prints when that share passes ``CONTENTION_WARNING``;
* the description of the machine and of the software measured;
* the command line: the parser of each script, ``--data-dir`` and the "at least 1" checks,
  and the corpus file check;
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


@dataclass(frozen=True)
class ProcessUsage:
    """Another process's CPU usage (``/proc/PID/stat``): its own CPU seconds (all its
    threads), and the CPU seconds, system CPU seconds and minor page faults of the children
    it has waited for (for the service: the job workers it has joined)."""

    cpu_seconds: float
    children_cpu_seconds: float
    children_system_seconds: float
    children_minor_page_faults: int

    @property
    def tree_cpu_seconds(self) -> float:
        """Its own CPU seconds and its waited-for children's."""
        return self.cpu_seconds + self.children_cpu_seconds


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


def own_cpu_seconds(include_children: bool = False) -> float:
    """User + system CPU seconds of this process, and with ``include_children`` those of its
    children that have been waited for (``wrk``, run by ``subprocess.run``)."""
    seconds = time.process_time()
    if include_children:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds += children.ru_utime + children.ru_stime
    return seconds


def process_stat_fields(process_id: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, so that field ``n`` of proc(5)
    is at index ``n - 3`` (state first); None where the process or the file is missing."""
    try:
        return Path(f"/proc/{process_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_usage(process_id: int) -> ProcessUsage | None:
    """The CPU usage of process ``process_id`` and of its waited-for children, from
    ``/proc/PID/stat``; None where that process or file is missing."""
    fields = process_stat_fields(process_id)
    if fields is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # proc(5): cminflt is field 11; utime, stime, cutime, cstime fields 14 to 17.
    return ProcessUsage(
        cpu_seconds=(int(fields[11]) + int(fields[12])) / ticks,
        children_cpu_seconds=(int(fields[13]) + int(fields[14])) / ticks,
        children_system_seconds=int(fields[14]) / ticks,
        children_minor_page_faults=int(fields[8]),
    )


def usage_between(before: ProcessUsage | None, after: ProcessUsage | None) -> ProcessUsage | None:
    """What a process used from one reading to the next; None where either is missing."""
    if before is None or after is None:
        return None
    return ProcessUsage(
        cpu_seconds=after.cpu_seconds - before.cpu_seconds,
        children_cpu_seconds=after.children_cpu_seconds - before.children_cpu_seconds,
        children_system_seconds=after.children_system_seconds - before.children_system_seconds,
        children_minor_page_faults=(
            after.children_minor_page_faults - before.children_minor_page_faults
        ),
    )


def sample_cpu(include_children: bool = False) -> CpuSample:
    """The wall clock, the machine's busy CPU seconds (None where ``/proc/stat`` is missing),
    and this process's CPU seconds (with ``include_children``, its waited-for children's
    too), system CPU seconds and minor page faults."""
    machine_busy = machine_busy_seconds()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return CpuSample(
        wall=time.perf_counter(),
        machine_busy=machine_busy,
        own=own_cpu_seconds(include_children),
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


def others_cpu_share(
    before: CpuSample, after: CpuSample, also_accounted_seconds: float = 0.0
) -> float | None:
    """Share of all cores that *other* processes kept busy between two samples: all but this
    process and ``also_accounted_seconds`` (a measured server's, say)."""
    if before.machine_busy is None or after.machine_busy is None:
        return None
    return unaccounted_cpu_share(
        after.machine_busy - before.machine_busy,
        (after.own - before.own) + also_accounted_seconds,
        after.wall - before.wall,
    )


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


def benchmark_parser(module: str, docstring: str | None) -> argparse.ArgumentParser:
    """The parser of ``python -m MODULE``, described by the first line of its docstring."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}", description=(docstring or "").partition("\n")[0]
    )


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
