"""The machine's description for the results: CPU, memory, kernel, disk, versions."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.tools import Tool


def describe(tools: Sequence[Tool]) -> list[str]:
    lines = [
        f"- CPU: {_cpu_model()}, {os.cpu_count()} logical cores",
        f"- memory: {_mem_total_gib():.1f} GiB",
        f"- kernel: {platform.release()}; {_os_name()}",
        f"- root disk: {_root_disk()}",
        f"- cgroups: {_cgroup_mode()}",
    ]
    lines += [f"- {tool.name}: {tool.version()}" for tool in tools if tool.version()]
    return lines


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / (1 << 20)
    return 0.0


def _os_name() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "unknown"


def _root_disk() -> str:
    done = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "/"],
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip() or "unknown"


def _cgroup_mode() -> str:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return "v2"
    if Path("/sys/fs/cgroup/unified").exists():
        return "v1 (hybrid)"
    return "v1"
