"""Test images with incompressible layers, so byte counts are dominated by blobs."""

from __future__ import annotations

import random

from sandpull.oci import Compression, mediatype
from tests.support.images import Image, build_image
from tests.support.layers import dir_, file, make_layer, tar_entries

#: Response headers and documents stay far below one layer of this size.
OVERHEAD_LIMIT = 64 * 1024


def big_image(layers: int, layer_bytes: int, seed: int = 0) -> Image:
    """``layers`` layers, each one file of random bytes at ``data/<i>``."""
    built = []
    for i in range(layers):
        content = random.Random(seed * 1000 + i).randbytes(layer_bytes)
        tar = tar_entries([dir_("data/"), file(f"data/{i}", content)])
        built.append(make_layer(tar, mediatype.OCI_LAYER_ZSTD, Compression.ZSTD))
    return build_image(built)
