"""End to end: the rootfs sandpull pulls and mounts equals the one umoci unpacks.

Each catalogue image is pushed to a real registry, pulled with the ``sandpull``
command into a fresh store, mounted (an overlay of the image's snapshots) and
snapshotted; umoci unpacks the same image (or its gzip twin, for zstd layers) from
the same registry. The two trees must not differ in anything :mod:`tests.support.trees`
compares, file mtimes included.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.catalogue import NAMES, SMALL_NAMES, Catalogue
from tests.support.images import Pushed
from tests.support.registry_server import RegistryServer, cli_registry_options
from tests.support.trees import Tree, compare_trees, tree_snapshot
from tests.support.umoci import UmociRootfs

pytestmark = [pytest.mark.registry, pytest.mark.root]

SANDPULL = str(Path(sys.executable).with_name("sandpull"))
REGISTRIES = ("registry_plain", "registry_tls_basic", "registry_token")
_TIMEOUT_SECONDS = 300


def _cases() -> list[object]:
    cases: list[object] = []
    for name in NAMES:
        # The Debian images are large: one registry setup is enough for them.
        registries = REGISTRIES if name in SMALL_NAMES else REGISTRIES[:1]
        for registry in registries:
            setup = registry.removeprefix("registry_").replace("_", " and ")
            what = f"{name} pulled over {setup} equals umoci's rootfs"
            cases.append(pytest.param(name, registry, False, id=what))
    for name in ("multiarch", "whiteouts"):
        what = f"{name} pulled by digest over token equals umoci's rootfs"
        cases.append(pytest.param(name, "registry_token", True, id=what))
    return cases


@dataclass(frozen=True)
class Sandpull:
    """The ``sandpull`` command against one store and one registry fixture."""

    root: Path
    server: RegistryServer
    work: Path

    def run(self, *args: str, stdin: str | None = None) -> None:
        command = [SANDPULL, *args, "--root", str(self.root)]
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True,
            timeout=_TIMEOUT_SECONDS,
        )  # fmt: skip
        assert result.returncode == 0, (
            f"sandpull {args[0]} exited {result.returncode}\n"
            f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
        )

    def pull(self, ref: str) -> None:
        self.run("pull", ref, *self._registry_options(), stdin=self.server.password)

    def mounted_tree(self, ref: str) -> Tree:
        target = self.work / "mnt"
        target.mkdir()
        self.run("mount", ref, str(target))
        try:
            return tree_snapshot(target)
        finally:
            subprocess.run(["umount", str(target)], check=True)

    def _registry_options(self) -> list[str]:
        return cli_registry_options(self.server, self.work)


def _reference_tree(
    catalogue: Catalogue, server: RegistryServer, umoci: UmociRootfs, name: str
) -> Tree:
    reference: Pushed = catalogue.push_reference(server, name)
    return tree_snapshot(umoci(server, f"{reference.repo}:{reference.tag}"))


@pytest.mark.parametrize(("name", "registry", "by_digest"), _cases())
def test_pull_matches_umoci(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    image_catalogue: Catalogue,
    umoci_rootfs: UmociRootfs,
    name: str,
    registry: str,
    by_digest: bool,
) -> None:
    server: RegistryServer = request.getfixturevalue(registry)
    pushed = image_catalogue.push(server, name)
    expected = _reference_tree(image_catalogue, server, umoci_rootfs, name)
    sandpull = Sandpull(tmp_path / "store", server, tmp_path)

    ref = pushed.ref_by_digest if by_digest else pushed.ref
    sandpull.pull(ref)
    actual = sandpull.mounted_tree(ref)

    problems = compare_trees(
        expected, actual, mtimes=True, labels=("umoci", "sandpull")
    )
    assert problems == [], "\n".join(problems[:50])
