"""The pullers under test: sandpull three ways, its peers, and the floor.

Each :class:`Tool` pulls one image into a fresh store in one run's cgroup and says
where the unpacked layers are, so the run can look for the image's marker file.
``unavailable()`` names what is missing instead of failing the whole benchmark.
"""

from __future__ import annotations

import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import sandbox
from bench.catalogue import BenchImage
from bench.measure import RunFailed, RunGroup, Sample, measure

SANDPULL = Path(sys.executable).with_name("sandpull")
DAEMON_READY_SECONDS = 30.0


@dataclass(frozen=True)
class RunContext:
    """One run: ``store`` is fresh and on the file system under test; ``scratch``
    (root disk, short path) holds sockets, configs and logs."""

    image: BenchImage
    store: Path
    scratch: Path
    group: RunGroup

    @property
    def log(self) -> Path:
        return self.scratch / "tool.log"


class Tool:
    """A puller; subclasses fill in how to run it and where its layers land."""

    name = ""
    commands: tuple[str, ...] = ()
    #: True when the tool writes to a disk of its own, not the one under test;
    #: it then runs in the ``loop`` pass only (its own disk is a loop ext4 too).
    own_disk = False

    def unavailable(self) -> str | None:
        """Why this tool cannot run here, or None."""
        missing = [c for c in self.commands if shutil.which(c) is None]
        return f"not installed: {', '.join(missing)}" if missing else None

    def version(self) -> str:
        return ""

    def run(self, ctx: RunContext) -> Sample:
        raise NotImplementedError

    def layer_dirs(self, ctx: RunContext) -> list[Path]:
        raise NotImplementedError

    def marker(self, image: BenchImage) -> tuple[str, bytes]:
        """The marker file (relative path, content) that proves the pull."""
        return image.marker, image.marker_content()

    def find_marker(self, ctx: RunContext) -> Path | None:
        """The marker file with the right content in the store, or None."""
        relpath, content = self.marker(ctx.image)
        for layer in self.layer_dirs(ctx):
            candidate = layer / relpath
            if candidate.is_file() and candidate.read_bytes() == content:
                return candidate
        return None

    def cleanup(self, ctx: RunContext) -> None:
        """Undo what ``run`` set up outside the store (after ``find_marker``)."""


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError:
        return ""
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""


# --- sandpull -----------------------------------------------------------------------


class Sandpull(Tool):
    """``sandpull pull REF --root STORE``: the host store."""

    name = "sandpull"

    def unavailable(self) -> str | None:
        if not SANDPULL.exists():
            return f"not installed: {SANDPULL}"
        done = subprocess.run([str(SANDPULL), "--help"], capture_output=True, text=True)
        if re.search(r"^\W*pull\s", done.stdout, re.MULTILINE) is None:
            return "`sandpull pull` does not exist yet"
        return None

    def version(self) -> str:
        rev = _first_line(["git", "-C", str(SANDPULL.parents[2]), "rev-parse", "HEAD"])
        return f"sandpull {rev[:12]}"

    def run(self, ctx: RunContext) -> Sample:
        pull = [str(SANDPULL), "pull", ctx.image.ref, "--root", str(ctx.store)]
        return measure(ctx.group, [[[pull]]], ctx.log)

    def layer_dirs(self, ctx: RunContext) -> list[Path]:
        return sorted(ctx.store.glob("snapshots/*/fs"))


class SandpullWarm(Sandpull):
    """The ``warm`` tag after an untimed pull of ``latest``: one new layer on top."""

    name = "sandpull-warm"

    def run(self, ctx: RunContext) -> Sample:
        base = [str(SANDPULL), "pull", ctx.image.ref, "--root", str(ctx.store)]
        with ctx.log.open("ab") as out:
            done = subprocess.run(base, stdout=out, stderr=out)
        if done.returncode != 0:
            raise RunFailed(f"untimed pull of {ctx.image.ref}: exit {done.returncode}")
        pull = [str(SANDPULL), "pull", ctx.image.warm_ref, "--root", str(ctx.store)]
        return measure(ctx.group, [[[pull]]], ctx.log)

    def marker(self, image: BenchImage) -> tuple[str, bytes]:
        return image.warm_marker, image.marker_content(warm=True)


class SandpullSandbox(Sandpull):
    """``sandpull pull --sandbox NAME REF``: the agent pulls in an ``ns`` sandbox.

    The sandbox (made per run, untimed) reaches the registry in the session's
    tenant network (:mod:`bench.sandbox`). Its agent joins the run's group, so
    the agent's CPU and memory count together with the CLI's.
    """

    name = "sandpull-sandbox"
    own_disk = True
    commands = ("nsenter",)

    def __init__(self) -> None:
        self.tenant: sandbox.Tenant | None = None
        self._boxes: dict[Path, sandbox.Box] = {}

    def unavailable(self) -> str | None:
        reason = super().unavailable() or Tool.unavailable(self)
        if reason is not None:
            return reason
        done = subprocess.run(
            [str(SANDPULL), "pull", "--help"], capture_output=True, text=True
        )
        if "--sandbox" not in done.stdout:
            return "`sandpull pull --sandbox` does not exist yet"
        return None

    def run(self, ctx: RunContext) -> Sample:
        if self.tenant is None:
            raise RuntimeError("pull in a sandbox: no tenant network was set up")
        box = sandbox.create(SANDPULL, self.tenant, f"bench-{ctx.scratch.name}")
        self._boxes[ctx.scratch] = box
        if not ctx.group.adopt(box.agent_pid):
            # TODO: on cgroup v2 read the agent's figures from its sandbox's own
            # cgroup; until then only the CLI's CPU and memory count there.
            print("sandpull-sandbox: cgroup v2, agent not measured", file=sys.stderr)
        ref = f"{self.tenant.host}/{ctx.image.repo}:latest"
        pull = [str(SANDPULL), "pull", "--sandbox", box.name, ref]
        return measure(ctx.group, [[[pull]]], ctx.log, env=self.tenant.env)

    def find_marker(self, ctx: RunContext) -> Path | None:
        box = self._boxes.get(ctx.scratch)
        relpath, content = self.marker(ctx.image)
        if box is None or sandbox.read_in(box, f"snapshots/*/fs/{relpath}") != content:
            return None
        copy = ctx.scratch / "marker-from-sandbox"  # for --keep-last readers
        copy.write_bytes(content)
        return copy

    def cleanup(self, ctx: RunContext) -> None:
        box = self._boxes.pop(ctx.scratch, None)
        if box is not None and self.tenant is not None:
            sandbox.remove(SANDPULL, self.tenant, box.name)


# --- containerd ---------------------------------------------------------------------

_CONTAINERD_CONFIG = """\
version = 2
root = "{store}/root"
state = "{scratch}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]
[grpc]
  address = "{scratch}/grpc.sock"
[ttrpc]
  address = "{scratch}/ttrpc.sock"
[debug]
  address = "{scratch}/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{store}/opt"
"""


class Containerd(Tool):
    """``ctr images pull`` against its own daemon, started per run in the run's group.

    The daemon's start-up is outside the timed window; its CPU during the pull and
    its peak RSS count.
    """

    name = "containerd"
    commands = ("containerd", "ctr")

    def version(self) -> str:
        return _first_line(["containerd", "--version"])

    def run(self, ctx: RunContext) -> Sample:
        config = ctx.scratch / "containerd.toml"
        config.write_text(
            _CONTAINERD_CONFIG.format(store=ctx.store, scratch=ctx.scratch)
        )
        with ctx.log.open("ab") as out:
            daemon = subprocess.Popen(
                ctx.group.wrap(["containerd", "--config", str(config)]),
                stdout=out,
                stderr=out,
            )
        try:
            self._wait_ready(ctx, daemon)
            pull = [*self._ctr(ctx), "images", "pull", "--plain-http",
                    "--snapshotter", "overlayfs", ctx.image.ref]  # fmt: skip
            return measure(ctx.group, [[[pull]]], ctx.log)
        finally:
            daemon.terminate()
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()

    @staticmethod
    def _ctr(ctx: RunContext) -> list[str]:
        return ["ctr", "--address", str(ctx.scratch / "grpc.sock"), "-n", "bench"]

    def _wait_ready(self, ctx: RunContext, daemon: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + DAEMON_READY_SECONDS
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise RuntimeError(f"start containerd: exit {daemon.returncode}")
            done = subprocess.run([*self._ctr(ctx), "version"], capture_output=True)
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"start containerd: not ready in {DAEMON_READY_SECONDS}s")

    def layer_dirs(self, ctx: RunContext) -> list[Path]:
        snapshots = "root/io.containerd.snapshotter.v1.overlayfs/snapshots/*/fs"
        return sorted(ctx.store.glob(snapshots))


# --- podman -------------------------------------------------------------------------

_STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{store}/storage"
runroot = "{scratch}/run"
"""
_CONTAINERS_CONF = """\
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{scratch}/events.log"
tmp_dir = "{scratch}/tmp"
static_dir = "{store}/libpod"
"""


class Podman(Tool):
    """``podman pull`` with its own storage root; runc, cgroupfs, soft ``nofile``
    below the hard limit (podman fails here otherwise)."""

    name = "podman"
    commands = ("podman", "runc")

    def version(self) -> str:
        return _first_line(["podman", "--version"])

    def run(self, ctx: RunContext) -> Sample:
        storage, containers = (
            ctx.scratch / "storage.conf",
            ctx.scratch / "containers.conf",
        )
        storage.write_text(_STORAGE_CONF.format(store=ctx.store, scratch=ctx.scratch))
        containers.write_text(
            _CONTAINERS_CONF.format(store=ctx.store, scratch=ctx.scratch)
        )
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CONTAINERS_STORAGE_CONF": str(storage),
            "CONTAINERS_CONF": str(containers),
        }
        pull = [
            "podman", "--root", str(ctx.store / "storage"),
            "--runroot", str(ctx.scratch / "run"), "--storage-driver", "overlay",
            "--runtime", "runc", "--cgroup-manager", "cgroupfs",
            "pull", "--quiet", "--tls-verify=false", ctx.image.ref,
        ]  # fmt: skip
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        soft = max(1024, hard // 2) if hard != resource.RLIM_INFINITY else 65536
        return measure(ctx.group, [[[pull]]], ctx.log, env=env, nofile_soft=soft)

    def layer_dirs(self, ctx: RunContext) -> list[Path]:
        return sorted(ctx.store.glob("storage/overlay/*/diff"))


# --- skopeo + umoci -----------------------------------------------------------------


class SkopeoUmoci(Tool):
    """``skopeo copy`` to an OCI layout, then ``umoci unpack`` to a bundle."""

    name = "skopeo-umoci"
    commands = ("skopeo", "umoci")

    def version(self) -> str:
        skopeo = _first_line(["skopeo", "--version"])
        return f"{skopeo}; {_first_line(['umoci', '--version'])}"

    def run(self, ctx: RunContext) -> Sample:
        layout = f"{ctx.store}/layout:bench"
        copy = ["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                f"docker://{ctx.image.ref}", f"oci:{layout}"]  # fmt: skip
        unpack = ["umoci", "unpack", "--image", layout, str(ctx.store / "bundle")]
        return measure(ctx.group, [[[copy]], [[unpack]]], ctx.log)

    def layer_dirs(self, ctx: RunContext) -> list[Path]:
        return [ctx.store / "bundle" / "rootfs"]


# --- the floor ----------------------------------------------------------------------


class Floor(Tool):
    """Each layer blob through ``curl | gzip -dc | tar -x`` into its own directory,
    all layers at once: download + decompress + write with nothing else.

    One ``bash`` starts the pipelines, so starting forty of them costs what a
    shell's fork costs, not the benchmark's. No manifest or config is fetched and
    nothing is verified; this bounds a puller, it is not one.
    """

    name = "floor"
    commands = ("bash", "curl", "gzip", "zstd", "tar")

    def version(self) -> str:
        return _first_line(["curl", "--version"])

    def run(self, ctx: RunContext) -> Sample:
        lines = ["set -o pipefail", "pids="]
        for index, digest in enumerate(ctx.image.layers):
            target = ctx.store / "layers" / f"{index:03d}"
            target.mkdir(parents=True)
            decompress = "zstd" if ctx.image.compression.value == "zstd" else "gzip"
            url = shlex.quote(ctx.image.blob_url(digest))
            lines.append(f"curl -sSf {url} | {decompress} -dc | "
                         f"tar -x -f - -C {shlex.quote(str(target))} &")  # fmt: skip
            lines.append('pids="$pids $!"')
        lines.append('for pid in $pids; do wait "$pid" || exit 1; done')
        script = ["bash", "-c", "\n".join(lines)]
        return measure(ctx.group, [[[script]]], ctx.log)

    def layer_dirs(self, ctx: RunContext) -> list[Path]:
        return sorted((ctx.store / "layers").glob("*"))


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Sandpull(),
        SandpullSandbox(),
        SandpullWarm(),
        Containerd(),
        Podman(),
        SkopeoUmoci(),
        Floor(),
    )
}
