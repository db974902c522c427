"""Results: samples folded into records, then JSON, a Markdown table and a chart."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

MIB = 1 << 20
FS_TITLES = {
    "loop": "ext4 on a loop device (the kind of disk a sandbox gets)",
    "root": "the root disk",
}


@dataclass(frozen=True)
class Record:
    """One line of ``latest.json``: medians over the counted runs."""

    image: str
    tool: str
    fs: str
    runs: int
    wall_s_median: float
    cpu_s_median: float
    peak_rss_mib: float


@dataclass(frozen=True)
class Counted:
    """One counted run."""

    image: str
    tool: str
    fs: str
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int


def fold(samples: Sequence[Counted]) -> list[Record]:
    """Medians per (image, tool, fs), in the order the runs happened."""
    groups: dict[tuple[str, str, str], list[Counted]] = {}
    for sample in samples:
        groups.setdefault((sample.image, sample.tool, sample.fs), []).append(sample)
    return [
        Record(
            image=image,
            tool=tool,
            fs=fs,
            runs=len(runs),
            wall_s_median=round(statistics.median(r.wall_s for r in runs), 4),
            cpu_s_median=round(statistics.median(r.cpu_s for r in runs), 4),
            peak_rss_mib=round(
                statistics.median(r.peak_rss_bytes for r in runs) / MIB, 1
            ),
        )
        for (image, tool, fs), runs in groups.items()
    ]


def write_json(records: Sequence[Record], path: Path) -> None:
    path.write_text(json.dumps([asdict(r) for r in records], indent=2) + "\n")


# --- Markdown -----------------------------------------------------------------------


def _find(records: Sequence[Record], image: str, tool: str, fs: str) -> Record | None:
    for record in records:
        if (record.image, record.tool, record.fs) == (image, tool, fs):
            return record
    return None


def _ratio(record: Record, other: Record | None) -> str:
    if other is None or other.wall_s_median <= 0:
        return "–"
    return f"{record.wall_s_median / other.wall_s_median:.2f}"


def table(records: Sequence[Record], fs: str) -> list[str]:
    lines = [
        f"### {FS_TITLES.get(fs, fs)}",
        "",
        "| image | tool | runs | wall s | CPU s (user+sys) | peak RSS MiB "
        "| × containerd | × floor |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in (r for r in records if r.fs == fs):
        base = _find(records, r.image, "containerd", fs)
        floor = _find(records, r.image, "floor", fs)
        lines.append(
            f"| {r.image} | {r.tool} | {r.runs} | {r.wall_s_median:.3f} "
            f"| {r.cpu_s_median:.3f} | {r.peak_rss_mib:.1f} "
            f"| {_ratio(r, base)} | {_ratio(r, floor)} |"
        )
    return [*lines, ""]


#: (text, image, tool, compared with, limit) on median wall time; with None, the
#: limit is on peak RSS in MiB.
TARGETS: tuple[tuple[str, str, str, str | None, float], ...] = (
    ("sandpull ≤ 0.8× containerd, debian", "debian", "sandpull", "containerd", 0.8),
    ("sandpull ≤ 0.8× containerd, large", "large", "sandpull", "containerd", 0.8),
    ("sandpull ≤ 0.8× containerd, blob", "blob", "sandpull", "containerd", 0.8),
    ("sandpull ≤ 1.0× containerd, small", "small", "sandpull", "containerd", 1.0),
    ("sandpull ≤ 1.0× containerd, layers", "layers", "sandpull", "containerd", 1.0),
    ("sandbox ≤ 1.15× host, large", "large", "sandpull-sandbox", "sandpull", 1.15),
    ("sandpull peak RSS ≤ 120 MiB, large", "large", "sandpull", None, 120.0),
    ("sandpull peak RSS ≤ 120 MiB, blob", "blob", "sandpull", None, 120.0),
    ("sandpull ≤ 1.3× floor, blob", "blob", "sandpull", "floor", 1.3),
)


def targets(records: Sequence[Record], fs: str) -> list[str]:
    lines = [f"### Targets, {fs}", "", "| target | value | met |", "|---|---:|---|"]
    for text, image, tool, other, limit in TARGETS:
        mine = _find(records, image, tool, fs)
        if mine is None:
            lines.append(f"| {text} | not measured | – |")
            continue
        if other is None:
            value = mine.peak_rss_mib
            shown = f"{value:.1f} MiB"
        else:
            theirs = _find(records, image, other, fs)
            if theirs is None or theirs.wall_s_median <= 0:
                lines.append(f"| {text} | {other} not measured | – |")
                continue
            value = mine.wall_s_median / theirs.wall_s_median
            shown = f"{value:.2f}×"
        lines.append(f"| {text} | {shown} | {'yes' if value <= limit else 'NO'} |")
    return [*lines, ""]


def markdown(
    records: Sequence[Record],
    machine: Sequence[str],
    method: Sequence[str],
    missing: dict[str, str],
) -> str:
    lines = ["# sandpull pull benchmark", "", "## Machine", "", *machine, ""]
    lines += ["## Results (medians)", ""]
    for fs in dict.fromkeys(r.fs for r in records):
        lines += table(records, fs) + targets(records, fs)
    if missing:
        lines += ["## Not measured", ""]
        lines += [f"- `{tool}`: {_one_line(why)}" for tool, why in missing.items()]
        lines.append("")
    lines += ["## Method", "", *method, ""]
    return "\n".join(lines)


def _one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- the chart ----------------------------------------------------------------------


def chart(records: Sequence[Record], path: Path) -> None:
    """Grouped bars of median wall time: one panel per file system, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(dict.fromkeys(r.fs for r in records))
    images = list(dict.fromkeys(r.image for r in records))
    tools = list(dict.fromkeys(r.tool for r in records))
    figure, axes = plt.subplots(
        len(systems), 1, figsize=(max(6, 2 * len(images) + 3), 4 * len(systems)),
        squeeze=False,
    )  # fmt: skip
    width = 0.8 / max(1, len(tools))
    for ax, fs in zip(axes[:, 0], systems, strict=True):
        for t, tool in enumerate(tools):
            xs, ys = [], []
            for i, image in enumerate(images):
                record = _find(records, image, tool, fs)
                if record is not None:
                    xs.append(i + t * width)
                    ys.append(record.wall_s_median)
            ax.bar(xs, ys, width, label=tool)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(images))], images)
        ax.set_yscale("log")
        ax.set_ylabel("median wall time, s")
        ax.set_title(FS_TITLES.get(fs, fs))
        ax.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
