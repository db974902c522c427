"""The image store and the pull pipeline."""

from sandpull.images.model import (
    CheckReport,
    FsUsage,
    GcReport,
    ImageRecord,
    LayerProgress,
    ProgressCallback,
    PulledImage,
)
from sandpull.images.service import ImageService

__all__ = [
    "CheckReport",
    "FsUsage",
    "GcReport",
    "ImageRecord",
    "ImageService",
    "LayerProgress",
    "ProgressCallback",
    "PulledImage",
]
