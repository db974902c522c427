"""registries.conf v2 parsing and endpoint matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpull.errors import InvalidArgument, PermissionDenied
from sandpull.oci import Reference
from sandpull.registry import Endpoint, RegistriesConfig

CONFIG = """
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "mirror.local:5000"
insecure = true
[[registry.mirror]]
location = "mirror2.local/hub"

[[registry]]
prefix = "example.com/team"
location = "internal.example.com:8443/mirrored/team"

[[registry]]
prefix = "example.com/team/secret"
blocked = true

[[registry]]
location = "plain.local:5000"
insecure = true

[[registry]]
prefix = "*.corp.example"
mirror-by-digest-only = true
[[registry.mirror]]
location = "cache.corp.example"
"""
DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        pytest.param(
            "busybox",
            [
                Endpoint("mirror.local:5000", "library/busybox", True, True),
                Endpoint("mirror2.local", "hub/library/busybox", False, True),
                Endpoint("registry-1.docker.io", "library/busybox", False, False),
            ],
            id="C40 docker hub mirrors come first and upstream last",
        ),
        pytest.param(
            "example.com/team/app:v1",
            [Endpoint("internal.example.com:8443", "mirrored/team/app", False, False)],
            id="a location rewrites the matched prefix",
        ),
        pytest.param(
            "example.com/teamwork/app:v1",
            [Endpoint("example.com", "teamwork/app", False, False)],
            id="a prefix matches whole path components only",
        ),
        pytest.param(
            "plain.local:5000/app",
            [Endpoint("plain.local:5000", "app", True, False)],
            id="an insecure registry entry marks its endpoint insecure",
        ),
        pytest.param(
            "registry.corp.example/app:v1",
            [Endpoint("registry.corp.example", "app", False, False)],
            id="digest-only mirrors are skipped for a tag",
        ),
        pytest.param(
            f"registry.corp.example/app@{DIGEST}",
            [
                Endpoint("cache.corp.example", "app", False, True),
                Endpoint("registry.corp.example", "app", False, False),
            ],
            id="a wildcard prefix keeps the host and uses mirrors for a digest",
        ),
        pytest.param(
            "quay.io/org/app",
            [Endpoint("quay.io", "org/app", False, False)],
            id="an unlisted registry is used directly",
        ),
    ],
)
def test_endpoints(reference: str, expected: list[Endpoint]) -> None:
    config = RegistriesConfig.parse(CONFIG)

    assert config.endpoints(Reference.parse(reference)) == expected


def test_the_longest_prefix_wins_and_a_blocked_registry_is_refused() -> None:
    config = RegistriesConfig.parse(CONFIG)

    with pytest.raises(PermissionDenied, match=r"example\.com/team/secret is blocked"):
        config.endpoints(Reference.parse("example.com/team/secret/app"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[[registry]\n", "parse", id="broken toml is refused"),
        pytest.param("registry = 3", "must be an array", id="registry not a list"),
        pytest.param(
            '[[registry]]\nlocation = "a"\ninsecure = "yes"',
            "insecure must be true or false",
            id="a string for insecure is refused",
        ),
        pytest.param(
            "[[registry]]\ninsecure = true",
            "want a prefix or a location",
            id="an entry without prefix or location is refused",
        ),
        pytest.param(
            '[[registry]]\nlocation = "a"\n[[registry.mirror]]\ninsecure = true',
            "want a table with a location",
            id="a mirror without location is refused",
        ),
    ],
)
def test_bad_config_is_invalid_argument(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        RegistriesConfig.parse(text)


def test_load_reads_a_file_and_a_missing_explicit_file_is_an_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "registries.toml"
    path.write_text(CONFIG)

    assert RegistriesConfig.load(path).is_insecure("mirror.local:5000")
    assert not RegistriesConfig.load(path).is_insecure("mirror2.local")
    with pytest.raises(InvalidArgument, match="no such file"):
        RegistriesConfig.load(tmp_path / "absent.toml")
