"""Every command prints its help: the CLI a newcomer explores first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = [
    [],
    ["pull"],
    ["images"],
    ["inspect"],
    ["rmi"],
    ["gc"],
    ["mount"],
    ["check"],
    ["run"],
    ["stats"],
    ["sandbox"],
    ["sandbox", "create"],
    ["network"],
    ["network", "exec"],
    ["agent"],
    ["agent", "serve"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top level")
def test_help_of_every_command_prints_usage(command: list[str]) -> None:
    argv = [str(Path(sys.executable).parent / "sandpull"), *command, "--help"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: sandpull" in result.stdout
