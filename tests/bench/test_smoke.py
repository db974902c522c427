"""The benchmark script in smoke mode: it runs, and what it reports is real.

``bench/run.py --smoke`` pulls the ``small`` image once with every installed tool
into a loop-mounted ext4 file system. The test keeps each tool's store and checks
that the image's marker file is in it, and that ``latest.json`` holds one record
of the documented shape per tool that ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RECORD_KEYS = {
    "image", "tool", "fs", "runs", "wall_s_median", "cpu_s_median", "peak_rss_mib",
}  # fmt: skip
TOOLS = {
    "sandpull", "sandpull-sandbox", "sandpull-warm", "containerd", "podman",
    "skopeo-umoci", "floor",
}  # fmt: skip
MARKER_CONTENT = {
    "sandpull-warm": b"sandpull bench image small-warm\n",
}
SMALL_MARKER = b"sandpull bench image small\n"

pytestmark = [
    pytest.mark.root,
    pytest.mark.registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="the benchmark needs root"),
]


@dataclass(frozen=True)
class Smoke:
    records: list[dict[str, Any]]
    markers: dict[str, bytes]  # tool -> content of the marker file in its store
    out: Path
    stderr: str


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smoke]:
    work = tmp_path_factory.mktemp("bench")
    out = work / "out"
    command = [sys.executable, str(REPO / "bench" / "run.py"), "--smoke",
               "--keep-last", "--work", str(work), "--out", str(out)]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
        records = json.loads((out / "latest.json").read_text())
        stores = json.loads((out / "stores.json").read_text())
        markers = {t: Path(kept["marker"]).read_bytes() for t, kept in stores.items()}
        yield Smoke(records, markers, out, done.stderr)
    finally:
        subprocess.run(["umount", str(work / "loop")], capture_output=True)


def test_every_record_has_the_documented_shape(smoke: Smoke) -> None:
    assert smoke.records, "no tool ran"
    for record in smoke.records:
        assert set(record) == RECORD_KEYS
        assert record["tool"] in TOOLS
        assert (record["image"], record["fs"], record["runs"]) == ("small", "loop", 1)
        assert record["wall_s_median"] > 0
        assert record["cpu_s_median"] > 0
        assert record["peak_rss_mib"] > 0


def test_each_tool_that_ran_left_the_image_marker_in_its_store(smoke: Smoke) -> None:
    ran = {record["tool"] for record in smoke.records}
    assert set(smoke.markers) == ran
    for tool, content in smoke.markers.items():
        assert content == MARKER_CONTENT.get(tool, SMALL_MARKER), tool


def test_the_floor_always_runs(smoke: Smoke) -> None:
    assert "floor" in {record["tool"] for record in smoke.records}


def test_tools_that_did_not_run_are_named_in_the_table(smoke: Smoke) -> None:
    ran = {record["tool"] for record in smoke.records}
    table = (smoke.out / "latest.md").read_text()
    for tool in TOOLS - ran:
        assert f"- `{tool}`: " in table


def test_the_chart_is_a_png(smoke: Smoke) -> None:
    pytest.importorskip("matplotlib")
    assert (smoke.out / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
