"""Fixtures for image store tests: a store over in-process fakes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpull.images import ImageService
from sandpull.images.remote import OnBytes, Registry
from tests.images.fakes import FakeApplier, FakeRegistry, FakeRegistryData


@pytest.fixture
def registry_data() -> FakeRegistryData:
    return FakeRegistryData()


@pytest.fixture
def applier() -> FakeApplier:
    return FakeApplier()


@pytest.fixture
def fake_service(
    tmp_path: Path, registry_data: FakeRegistryData, applier: FakeApplier
) -> Iterator[ImageService]:
    def factory(credentials: object, on_bytes: OnBytes) -> Registry:
        return FakeRegistry(registry_data, on_bytes)

    service = ImageService(
        tmp_path / "store", registry_factory=factory, apply_layer=applier
    )
    yield service
    service.close()
