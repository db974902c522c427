from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from sandpull.errors import ResourceExhausted
from sandpull.sandbox import ipam

SUBNET = ipaddress.IPv4Network("10.77.0.0/29")  # hosts .1-.6; .1 is the gateway


@pytest.fixture(autouse=True)
def netns_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /run/netns where every owner used below exists."""
    netns_dir = tmp_path / "netns"
    netns_dir.mkdir()
    for name in ("ns0", "ns1", "ns2", "ns3", "ns4", "ns-a", "ns-b", "alive"):
        (netns_dir / name).touch()
    monkeypatch.setattr(ipam, "NETNS_DIR", netns_dir)
    return netns_dir


def test_allocate_skips_the_gateway_and_never_repeats(tmp_path: Path) -> None:
    got = [ipam.allocate(tmp_path / "leases", SUBNET, f"ns{i}") for i in range(3)]
    assert got == ["10.77.0.2", "10.77.0.3", "10.77.0.4"]


def test_released_address_is_handed_out_again(tmp_path: Path) -> None:
    first = ipam.allocate(tmp_path / "leases", SUBNET, "ns-a")
    ipam.release(tmp_path / "leases", first, "ns-a")
    assert ipam.allocate(tmp_path / "leases", SUBNET, "ns-b") == first


def test_release_by_another_owner_keeps_the_lease(tmp_path: Path) -> None:
    first = ipam.allocate(tmp_path / "leases", SUBNET, "ns-a")
    ipam.release(tmp_path / "leases", first, "ns-other")
    assert ipam.allocate(tmp_path / "leases", SUBNET, "ns-b") != first


def test_lease_of_a_vanished_namespace_is_taken_over(tmp_path: Path) -> None:
    leases = tmp_path / "leases"
    assert ipam.allocate(leases, SUBNET, "gone") == "10.77.0.2"
    assert ipam.allocate(leases, SUBNET, "alive") == "10.77.0.2"
    assert ipam.allocate(leases, SUBNET, "new") == "10.77.0.3"


def test_full_subnet_is_resource_exhausted(tmp_path: Path) -> None:
    for i in range(5):
        ipam.allocate(tmp_path / "leases", SUBNET, f"ns{i}")
    with pytest.raises(ResourceExhausted, match="all 5 in use"):
        ipam.allocate(tmp_path / "leases", SUBNET, "one-too-many")
