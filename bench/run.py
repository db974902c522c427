"""Benchmark pulls: sandpull against containerd, podman, skopeo + umoci, the floor.

Usage: ``python bench/run.py [--images small,debian] [--tools sandpull,containerd]
[--runs 5] [--fs loop|root|both] [--smoke]``. See bench/README.md for the method.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.session import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
