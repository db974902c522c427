"""The ``sandpull`` command run as a subprocess against a store and a real registry."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.registry_server import RegistryServer, cli_registry_options

SANDPULL = str(Path(sys.executable).with_name("sandpull"))


@dataclass(frozen=True)
class Cli:
    root: Path
    server: RegistryServer
    work: Path

    def command(self, *args: str) -> list[str]:
        return [SANDPULL, *args, "--root", str(self.root)]

    def run(
        self, *args: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"{args[0]}: {result.stderr[-3000:]}"
        return result.stdout

    def pull_args(self, ref: str) -> list[str]:
        return ["pull", ref, "--json", *self.registry_options()]

    def pull(self, ref: str) -> dict[str, Any]:
        stdout = self.ok(*self.pull_args(ref), stdin=self.server.password)
        pulled: dict[str, Any] = json.loads(stdout)
        return pulled

    def registry_options(self) -> list[str]:
        return cli_registry_options(self.server, self.work)


@pytest.fixture
def cli(tmp_path: Path, registry_plain: RegistryServer) -> Cli:
    return Cli(tmp_path / "store", registry_plain, tmp_path)
