"""Safe layer application: decompress, verify and apply one layer per snapshot.

``apply_layer`` streams a layer blob (gzip, zstd or plain tar) through its
diff_id hasher into a fresh snapshot directory that holds only that layer's changes
in overlayfs format, so a container's rootfs is one overlay mount of its image's
snapshots. Entries are resolved with chroot semantics over the merged view of the
snapshot and its lowers, and hostile entries are refused with a
``HostileEntryError`` naming the layer and the entry.
"""

from sandpull.unpack.apply import AppliedLayer, ApplyOptions, apply_layer

__all__ = ["AppliedLayer", "ApplyOptions", "apply_layer"]
