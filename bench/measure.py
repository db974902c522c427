"""Measuring one tool run: wall time, CPU of every process, peak RSS of every process.

Every process of a run lives in one cgroup made for that run (cgroup v1 ``cpuacct``
where it is mounted, else the v2 unified hierarchy). CPU is the cgroup's usage
(user + system, every process in it, a daemon included) over the timed window.

Peak RSS is the largest resident total of the run's processes at once: the sum
of their proportional set sizes (``Pss``: a page shared by n processes counts 1/n
in each, so shared libraries count once), sampled every :data:`SAMPLE_SECONDS`.
A spike shorter than that can hide between samples, so the figure is never below
the largest single process's own peak: ``VmHWM`` for sampled processes, and GNU
``time``'s maxrss for each command the benchmark starts (``time`` is small, so
that is the command's own figure; a process forked straight from the benchmark's
Python would inherit Python's high-water mark).
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

SAMPLE_SECONDS = 0.05
V1_CPUACCT = Path("/sys/fs/cgroup/cpuacct")
V2_ROOT = Path("/sys/fs/cgroup")
GNU_TIME = "/usr/bin/time"

#: One pipeline: argv lists whose stdout feeds the next one's stdin.
Pipeline = Sequence[Sequence[str]]


class RunFailed(Exception):
    """A timed command exited non-zero; the message carries its log's tail."""


@dataclass(frozen=True)
class Sample:
    """What one run cost."""

    wall_s: float
    cpu_s: float
    peak_rss_bytes: int


class RunGroup:
    """A cgroup for one run; processes join it through :meth:`wrap`."""

    def __init__(self, name: str) -> None:
        if (V1_CPUACCT / "cpuacct.usage").exists():
            self.path, self._v1 = V1_CPUACCT / "sandpull-bench" / name, True
        else:
            self.path, self._v1 = V2_ROOT / "sandpull-bench" / name, False
        self.path.mkdir(parents=True, exist_ok=True)

    def wrap(self, argv: Sequence[str], nofile_soft: int | None = None) -> list[str]:
        """``argv`` started through a shell that first moves itself into the group.

        The shell then ``exec``s the command, so the command keeps the shell's pid
        and every process it forks is in the group from its first instruction.
        """
        limit = f"ulimit -Sn {nofile_soft} && " if nofile_soft else ""
        script = f'{limit}echo $$ > {shlex.quote(str(self.procs))} && exec "$@"'
        return ["sh", "-c", script, "sh", *argv]

    def adopt(self, pid: int) -> bool:
        """Count a process started elsewhere (a sandbox's agent) in this group.

        Only where ``cpuacct`` is its own v1 hierarchy, which nothing else here
        uses: moving it there leaves the process's other cgroups (its sandbox's
        limits) alone. On v2 moving it would take it out of its sandbox; False.
        """
        if not self._v1:
            return False
        self.procs.write_text(f"{pid}\n")
        return True

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def pids(self) -> list[int]:
        return [int(line) for line in self.procs.read_text().split()]

    def cpu_seconds(self) -> float:
        if self._v1:
            return int((self.path / "cpuacct.usage").read_text()) / 1e9
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
        raise RuntimeError(f"read {self.path}/cpu.stat: no usage_usec")

    @staticmethod
    def remove_parent() -> None:
        """Remove the benchmark's parent cgroup once no run group is left in it."""
        for root in (V1_CPUACCT, V2_ROOT):
            with contextlib.suppress(OSError):
                (root / "sandpull-bench").rmdir()

    def remove(self) -> None:
        """Kill what is left in the group (only this run's processes) and remove it."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                _kill(pid)
            time.sleep(0.05)
        self.path.rmdir()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)


def _pss(pid: int) -> int:
    """A live process's proportional set size in bytes (0 if gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def _hwm(pid: int) -> int:
    """A live process's peak resident set in bytes (0 if gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class _Sampler:
    group: RunGroup
    together: int = 0  # the largest sum of Pss seen at one sample
    single: int = 0  # the largest VmHWM of one process
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> None:
        total = 0
        for pid in self.group.pids():
            total += _pss(pid)
            self.single = max(self.single, _hwm(pid))
        self.together = max(self.together, total)

    def peak(self, reported: Iterable[int]) -> int:
        """The run's peak; ``reported``: maxrss of the commands started under time."""
        return max(self.together, self.single, *reported, 0)


def measure(
    group: RunGroup,
    steps: Sequence[Sequence[Pipeline]],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    nofile_soft: int | None = None,
) -> Sample:
    """Run ``steps`` one after another, each step's pipelines concurrently.

    Processes already in ``group`` (a daemon) count for CPU and RSS too. Raises
    :class:`RunFailed` when a command exits non-zero.
    """
    launcher = _Launcher(group, log, env, nofile_soft)
    sampler = _Sampler(group)
    sampler.sample()
    cpu_before = group.cpu_seconds()
    started = time.perf_counter()
    sampler.start()
    try:
        for step in steps:
            launcher.run_step(step)
    finally:
        wall = time.perf_counter() - started
        sampler.stop()
    cpu = group.cpu_seconds() - cpu_before
    return Sample(wall, cpu, sampler.peak(launcher.reported.values()))


@dataclass
class _Launcher:
    """Starts commands under GNU ``time`` in the group and collects their peaks."""

    group: RunGroup
    log: Path
    env: dict[str, str] | None
    nofile_soft: int | None
    reported: dict[int, int] = field(default_factory=dict)
    _count: int = 0

    def run_step(self, step: Sequence[Pipeline]) -> None:
        with self.log.open("ab") as out:
            started = [self._spawn(pipeline, out) for pipeline in step]
        failed = []
        for procs in started:
            for proc, report, name in procs:
                _, status, _ = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                self.reported[proc.pid] = _read_kib(report) * 1024
                if proc.returncode != 0:
                    failed.append(f"{name} exit {proc.returncode}")
        if failed:
            raise RunFailed(", ".join(failed))

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        return self.group.wrap(argv, self.nofile_soft)

    def _spawn(
        self, pipeline: Pipeline, out: BinaryIO
    ) -> list[tuple[subprocess.Popen[bytes], Path, str]]:
        procs: list[tuple[subprocess.Popen[bytes], Path, str]] = []
        stdin: IO[bytes] | int = subprocess.DEVNULL
        for index, argv in enumerate(pipeline):
            self._count += 1
            report = self.log.with_name(f"maxrss-{self._count}")
            last = index == len(pipeline) - 1
            proc = subprocess.Popen(
                [*_timed(report), *self._wrap(argv)],
                stdin=stdin,
                stdout=out if last else subprocess.PIPE,
                stderr=out,
                env=self.env,
            )
            if isinstance(stdin, io.IOBase):
                stdin.close()  # the new process holds the read end now
            stdin = proc.stdout if proc.stdout is not None else subprocess.DEVNULL
            procs.append((proc, report, argv[0]))
        return procs


def _timed(report: Path) -> list[str]:
    """GNU ``time`` writing the command's maxrss to ``report``; without it (the
    Debian ``time`` package is missing) the command is only sampled."""
    if not os.path.exists(GNU_TIME):
        return []
    return [GNU_TIME, "-f", "%M", "-o", str(report)]


def _read_kib(report: Path) -> int:
    try:
        lines = report.read_text().split()
    except OSError:
        return 0
    return int(lines[-1]) if lines and lines[-1].isdigit() else 0
