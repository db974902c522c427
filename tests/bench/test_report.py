"""The benchmark's arithmetic: medians per image/tool/fs, ratios and target verdicts."""

from __future__ import annotations

import pytest

from bench.report import Counted, Record, fold, table, targets

MIB = 1 << 20


def _counted(tool: str, wall: float, cpu: float = 1.0, rss_mib: int = 10) -> Counted:
    return Counted("debian", tool, "loop", wall, cpu, rss_mib * MIB)


def _record(image: str, tool: str, wall: float, rss: float = 50.0) -> Record:
    return Record(image, tool, "loop", 5, wall, 1.0, rss)


@pytest.mark.parametrize(
    ("walls", "median"),
    [
        pytest.param([3.0, 1.0, 2.0], 2.0, id="an odd number of runs gives the middle"),
        pytest.param([4.0, 1.0, 2.0, 3.0], 2.5, id="an even number averages the two"),
        pytest.param([7.0], 7.0, id="one run is its own median"),
    ],
)
def test_fold_takes_the_median_wall_time(walls: list[float], median: float) -> None:
    (record,) = fold([_counted("sandpull", w) for w in walls])
    assert (record.runs, record.wall_s_median) == (len(walls), median)


def test_fold_keeps_tools_apart_and_reports_rss_in_mib() -> None:
    records = fold([_counted("sandpull", 1.0, rss_mib=30), _counted("floor", 0.5)])
    assert [(r.tool, r.peak_rss_mib) for r in records] == [
        ("sandpull", 30.0),
        ("floor", 10.0),
    ]


@pytest.mark.parametrize(
    ("records", "line"),
    [
        pytest.param(
            [_record("debian", "sandpull", 0.7), _record("debian", "containerd", 1.0)],
            "| sandpull ≤ 0.8× containerd, debian | 0.70× | yes |",
            id="debian at 0.7 of containerd meets the 0.8 target",
        ),
        pytest.param(
            [_record("debian", "sandpull", 0.9), _record("debian", "containerd", 1.0)],
            "| sandpull ≤ 0.8× containerd, debian | 0.90× | NO |",
            id="debian at 0.9 of containerd misses the 0.8 target",
        ),
        pytest.param(
            [_record("debian", "sandpull", 0.9)],
            "| sandpull ≤ 0.8× containerd, debian | containerd not measured | – |",
            id="without containerd the debian target is not judged",
        ),
        pytest.param(
            [_record("blob", "sandpull", 3.0, rss=121.0)],
            "| sandpull peak RSS ≤ 120 MiB, blob | 121.0 MiB | NO |",
            id="121 MiB on blob misses the 120 MiB target",
        ),
        pytest.param(
            [],
            "| sandpull ≤ 1.3× floor, blob | not measured | – |",
            id="an image that was not run is not measured",
        ),
    ],
)
def test_targets_say_whether_each_was_met(records: list[Record], line: str) -> None:
    assert line in targets(records, "loop")


def test_table_shows_ratios_to_containerd_and_the_floor() -> None:
    records = [
        _record("blob", "sandpull", 3.0),
        _record("blob", "containerd", 6.0),
        _record("blob", "floor", 2.0),
    ]
    rows = [line for line in table(records, "loop") if line.startswith("| blob")]
    assert rows[0].endswith("| 0.50 | 1.50 |")
