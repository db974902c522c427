from __future__ import annotations

import pytest

from sandpull.errors import InvalidArgument
from sandpull.sandbox import Limits, NetworkChoice, NetworkMode, SandboxSpec, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4096", 4096),
        ("512M", 512 << 20),
        ("2G", 2 << 30),
        ("2g", 2 << 30),
        ("1GiB", 1 << 30),
        ("64KB", 64 << 10),
    ],
    ids=[
        "a plain number is bytes",
        "M is mebibytes",
        "G is gibibytes",
        "units are case-insensitive",
        "GiB spells gibibytes too",
        "KB is kibibytes",
    ],
)
def test_parse_size_reads_binary_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["", "G", "-1G", "1.5G", "12X"],
    ids=["empty", "unit without number", "negative", "fraction", "unknown unit"],
)  # fmt: skip
def test_parse_size_rejects_garbage(text: str) -> None:
    with pytest.raises(InvalidArgument, match="parse size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "mode", "tenant"),
    [
        ("bridge", NetworkMode.BRIDGE, None),
        ("none", NetworkMode.NONE, None),
        ("tenant:acme", NetworkMode.TENANT, "acme"),
    ],
    ids=["bridge is the host bridge", "none is loopback only", "tenant names a net"],
)
def test_network_choice_round_trips(
    text: str, mode: NetworkMode, tenant: str | None
) -> None:
    choice = NetworkChoice.parse(text)
    assert (choice.mode, choice.tenant, str(choice)) == (mode, tenant, text)


@pytest.mark.parametrize(
    "text", ["host", "tenant:", "tenant:Bad/Name", "bridge:x"],
    ids=["unknown mode", "tenant without name", "tenant with bad name", "bridge arg"],
)  # fmt: skip
def test_network_choice_rejects_unknown_modes(text: str) -> None:
    with pytest.raises(InvalidArgument):
        NetworkChoice.parse(text)


@pytest.mark.parametrize(
    "name", ["", "-a", "A", "a/b", "..", "a" * 64],
    ids=["empty", "leading dash", "uppercase", "slash", "dots only", "too long"],
)  # fmt: skip
def test_sandbox_spec_rejects_bad_names(name: str) -> None:
    with pytest.raises(InvalidArgument, match="sandbox name"):
        SandboxSpec(name)


@pytest.mark.parametrize(
    "kwargs",
    [{"memory_bytes": 1024}, {"cpus": 0.0}, {"pids": 0}],
    ids=["memory below 4M", "zero cpus", "zero pids"],
)
def test_limits_reject_unusable_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidArgument, match="limit"):
        Limits(**kwargs)  # type: ignore[arg-type]


def test_sandbox_spec_rejects_a_tiny_disk() -> None:
    with pytest.raises(InvalidArgument, match="storage size"):
        SandboxSpec("a", storage_bytes=1 << 20)
