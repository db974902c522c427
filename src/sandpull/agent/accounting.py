"""Bytes fetched from registries, per registry and per image, for PullStats.

The registry client reports every body byte it receives through
:meth:`PullAccounting.on_bytes`; the same numbers feed a Prometheus counter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter


@dataclass(frozen=True)
class ImageBytes:
    registry: str
    image: str
    bytes: int


class PullAccounting:
    """Running totals; one instance per agent (per sandbox)."""

    def __init__(self, metrics: CollectorRegistry | None = None) -> None:
        self.metrics = metrics or CollectorRegistry()
        self._by_image: Counter[tuple[str, str]] = Counter()
        self._counter = PromCounter(
            "sandpull_registry_bytes",
            "Bytes received from registries during pulls.",
            ["registry"],
            registry=self.metrics,
        )

    def on_bytes(self, registry: str, image: str, n: int) -> None:
        """Count ``n`` bytes received from ``registry`` while pulling ``image``."""
        self._by_image[(registry, image)] += n
        self._counter.labels(registry=registry).inc(n)

    def by_registry(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (registry, _image), n in self._by_image.items():
            totals[registry] += n
        return dict(totals)

    def by_image(self) -> list[ImageBytes]:
        return [ImageBytes(r, i, n) for (r, i), n in sorted(self._by_image.items())]

    def total(self) -> int:
        return sum(self._by_image.values())
