"""One benchmark session: options, set-up, interleaved runs, results.

Runs are interleaved: every round runs each tool once, in the same order, after
one uncounted warm-up round. Each run gets a fresh store on the file system under
test and its own cgroup; ``sync`` runs before each run so the previous run's dirty
pages are not written back during the next one.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import disk, machine, report, sandbox
from bench.catalogue import NAMES, BenchImage, publish
from bench.measure import RunFailed, RunGroup
from bench.tools import SANDPULL, TOOLS, RunContext, SandpullSandbox, Tool
from tests.support import registry_server

REPO = Path(__file__).resolve().parents[1]
#: The peers and what the benchmark itself runs (GNU ``time`` measures peak RSS).
APT_PACKAGES = (
    "containerd", "podman", "runc", "skopeo", "umoci", "docker-registry",
    "busybox-static", "curl", "zstd", "e2fsprogs", "debootstrap", "time",
)  # fmt: skip


@dataclass(frozen=True)
class Options:
    images: tuple[str, ...]
    tools: tuple[str, ...]
    runs: int
    warmups: int
    systems: tuple[str, ...]
    work: Path
    out: Path
    install: bool
    keep_last: bool
    loop_gib: int


def parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__)
    parser.add_argument("--images", default=",".join(NAMES))
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--fs", choices=("loop", "root", "both"), default="both")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="small image, one run, no warm-up, loop fs, no installs",
    )
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument(
        "--keep-last",
        action="store_true",
        help="keep each tool's last store; write stores.json",
    )
    parser.add_argument("--loop-gib", type=int, default=16)
    args = parser.parse_args(argv)
    if args.smoke:
        args.images, args.runs, args.warmups, args.fs = "small", 1, 0, "loop"
        args.no_install, args.loop_gib = True, min(args.loop_gib, 2)
    out = args.out or (
        args.work / "smoke" if args.smoke else REPO / "bench" / "results"
    )
    return Options(
        images=_names(args.images, NAMES, "image"),
        tools=_names(args.tools, tuple(TOOLS), "tool"),
        runs=args.runs,
        warmups=args.warmups,
        systems=("loop", "root") if args.fs == "both" else (args.fs,),
        work=args.work.resolve(),
        out=out.resolve(),
        install=not args.no_install,
        keep_last=args.keep_last,
        loop_gib=args.loop_gib,
    )


def _names(text: str, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"--{what}s {text!r}: want some of {', '.join(known)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    if os.geteuid() != 0:
        print("error: the benchmark needs root (loop mounts, cgroups)", file=sys.stderr)
        return 2
    if options.install:
        install()
    options.work.mkdir(parents=True, exist_ok=True)
    options.out.mkdir(parents=True, exist_ok=True)
    tools, missing = select(options.tools)
    session = Session(options, tools)
    try:
        with ExitStack() as stack:
            server = stack.enter_context(registry(options.work / "registry"))
            images = [publish(server, name) for name in options.images]
            _start_tenant(stack, tools, options.work, server.storage, missing)
            session.run_all(images)
    finally:
        RunGroup.remove_parent()
    records = report.fold(session.counted)
    missing.update(session.failures)
    write_results(options, records, missing, tools)
    if session.kept:
        (options.out / "stores.json").write_text(json.dumps(session.kept, indent=2))
    print(f"results in {options.out}")
    return 1 if session.failures else 0


def _start_tenant(
    stack: ExitStack, tools: list[Tool], work: Path, storage: Path,
    missing: dict[str, str],
) -> None:  # fmt: skip
    """The tenant network for ``sandpull-sandbox``, if that tool is to run."""
    tool = next((t for t in tools if isinstance(t, SandpullSandbox)), None)
    if tool is None:
        return
    try:
        tool.tenant = stack.enter_context(sandbox.tenant(SANDPULL, work, storage))
    except RuntimeError as exc:
        missing[tool.name] = f"no tenant network: {exc}"
        tools.remove(tool)


def install() -> None:
    """Install the peers (Debian packages) and matplotlib (the ``bench`` extra)."""
    missing = [p for p in APT_PACKAGES if not _dpkg_installed(p)]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        *missing], check=True, env=env)  # fmt: skip
    if importlib.util.find_spec("matplotlib") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e",
                        f"{REPO}[bench]"], check=True)  # fmt: skip


def _dpkg_installed(package: str) -> bool:
    done = subprocess.run(["dpkg", "-s", package], capture_output=True, text=True)
    return done.returncode == 0 and "Status: install ok installed" in done.stdout


def select(names: Sequence[str]) -> tuple[list[Tool], dict[str, str]]:
    tools, missing = [], {}
    for name in names:
        reason = TOOLS[name].unavailable()
        if reason is None:
            tools.append(TOOLS[name])
        else:
            missing[name] = reason
            print(f"{name}: {reason}", file=sys.stderr)
    return tools, missing


@contextmanager
def registry(root: Path) -> Iterator[registry_server.RegistryServer]:
    """The real distribution registry on 127.0.0.1, plain HTTP, fresh storage."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    port = registry_server.free_port()
    config = registry_server._config_yaml(port, root / "storage", "", "")
    process = registry_server._start(root, config, port)
    try:
        yield registry_server._server(
            root, port, "http", username=None, password=None, ca_file=None,
            certs_dir=None,
        )  # fmt: skip
    finally:
        process.stop()


class Session:
    """The interleaved runs of one benchmark invocation."""

    def __init__(self, options: Options, tools: list[Tool]) -> None:
        self.options, self.tools = options, tools
        self.counted: list[report.Counted] = []
        self.failures: dict[str, str] = {}
        self.kept: dict[str, dict[str, str]] = {}
        self._serial = 0

    def run_all(self, images: Sequence[BenchImage]) -> None:
        for fs in self.options.systems:
            target = self._target(fs)
            try:
                for image in images:
                    self._rounds(image, target)
            finally:
                if not self.kept:
                    disk.release(target)

    def _target(self, fs: str) -> disk.Target:
        if fs == "loop":
            return disk.loop_ext4(self.options.work, self.options.loop_gib)
        return disk.root_disk(self.options.work)

    def _rounds(self, image: BenchImage, target: disk.Target) -> None:
        total = self.options.warmups + self.options.runs
        for round_ in range(total):
            for tool in self.tools:
                if tool.name in self.failures or _elsewhere(tool, target):
                    continue
                counted = round_ >= self.options.warmups
                keep = self.options.keep_last and round_ == total - 1
                self._run_once(tool, image, target, counted, keep)

    def _run_once(
        self, tool: Tool, image: BenchImage, target: disk.Target, counted: bool,
        keep: bool,
    ) -> None:  # fmt: skip
        ctx = self._context(tool, image, target)
        try:
            sample = tool.run(ctx)
            marker = _check_marker(tool, ctx)
        except (RunFailed, RuntimeError, OSError) as exc:
            reason = f"{image.name} on {target.fs}: {exc}{_tail(ctx.log)}"
            self.failures[tool.name] = reason
            print(f"{tool.name}: failed: {reason}", file=sys.stderr)
            disk.wipe(ctx.store)  # the log in ctx.scratch stays for a post-mortem
            return
        finally:
            _cleanup(tool, ctx)
        note = "" if counted else " (warm-up)"
        print(f"{tool.name} {image.name} {target.fs}: {sample.wall_s:.3f}s{note}",
              file=sys.stderr)  # fmt: skip
        if counted:
            self.counted.append(report.Counted(image.name, tool.name, target.fs,
                                               sample.wall_s, sample.cpu_s,
                                               sample.peak_rss_bytes))  # fmt: skip
        if keep:
            self.kept[tool.name] = {"marker": str(marker), "mount": str(target.root)}
        else:
            disk.wipe(ctx.store)
            shutil.rmtree(ctx.scratch, ignore_errors=True)

    def _context(
        self, tool: Tool, image: BenchImage, target: disk.Target
    ) -> RunContext:
        """A fresh store and scratch directory, a new cgroup, written data synced."""
        self._serial += 1
        store = target.root / f"{tool.name}-{image.name}-{self._serial}"
        scratch = self.options.work / "runs" / str(self._serial)
        for directory in (store, scratch):
            disk.wipe(directory)
            directory.mkdir(parents=True)
        os.sync()
        group = RunGroup(f"{os.getpid()}-{self._serial}")
        return RunContext(image, store, scratch, group)


def _elsewhere(tool: Tool, target: disk.Target) -> bool:
    """A tool with a disk of its own (a loop ext4) runs in the loop pass only."""
    return tool.own_disk and target.fs != "loop"


def _check_marker(tool: Tool, ctx: RunContext) -> Path:
    marker = tool.find_marker(ctx)
    if marker is None:
        relpath, _ = tool.marker(ctx.image)
        raise RuntimeError(f"check {tool.name} store {ctx.store}: no marker {relpath}")
    return marker


def _cleanup(tool: Tool, ctx: RunContext) -> None:
    try:
        tool.cleanup(ctx)
    finally:
        ctx.group.remove()


def _tail(log: Path) -> str:
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        return ""
    return f"\n    {text[-800:]}" if text else ""


def write_results(
    options: Options, records: list[report.Record], missing: dict[str, str],
    tools: list[Tool],
) -> None:  # fmt: skip
    out = options.out
    report.write_json(records, out / "latest.json")
    text = report.markdown(records, machine.describe(tools), method(options), missing)
    (out / "latest.md").write_text(text)
    if records and importlib.util.find_spec("matplotlib") is not None:
        report.chart(records, out / "latest.png")
    elif records:
        print("matplotlib is not installed: no chart", file=sys.stderr)


def method(options: Options) -> list[str]:
    return [
        f"- {options.warmups} uncounted warm-up round(s), then {options.runs} counted "
        "rounds; each round runs every tool once, in the same order (interleaved).",
        "- Every run: a fresh store on the file system under test (containerd: a "
        "fresh root and its own daemon started per run, start-up not timed); "
        "`sync` before the run.",
        "- Caching: the page cache cannot be dropped here (no write access to "
        "`/proc/sys/vm/drop_caches`). The registry's blobs are read from a warm page "
        "cache by every tool alike (the warm-up round loads them); every store starts "
        "empty, so no tool finds its own earlier output.",
        "- Wall: from the first process start to the last exit. CPU: the run's cgroup "
        "(cpuacct) usage, user + system, every process in it, the daemon included. "
        "Peak RSS: the largest sum of Pss over the run's processes at one 50 ms "
        "sample, never below the largest single process's peak; median over runs.",
        "- The floor: each layer blob through `curl | gzip -dc | tar -x`, all layers "
        "at once, no manifest, no verification.",
        f"- The loop file system: a sparse {options.loop_gib} GiB ext4 image, "
        "`mkfs.ext4 -E lazy_itable_init=0,lazy_journal_init=0`, loop-mounted.",
    ]
