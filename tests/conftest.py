"""Shared test configuration; fixtures live in tests/support/ and are loaded here."""

from __future__ import annotations

import pytest

pytest_plugins: list[str] = [
    "tests.support.registry_server",
    "tests.support.catalogue",
    "tests.support.umoci",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long", action="store_true", help="run the long soak and crash-loop tests"
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="long test; run with make test-long")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
