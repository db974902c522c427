"""The ``sandpull`` command as a newcomer uses it, against the real registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.mainjob.conftest import env, private_registry
from tests.support.registry_server import RegistryServer


@pytest.fixture
def cli(tmp_path: Path, registry_plain: RegistryServer) -> Cli:
    return Cli(tmp_path / "store", registry_plain, tmp_path)


__all__ = ["cli", "env", "private_registry"]
