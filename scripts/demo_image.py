"""Build the demo image as an OCI layout: Debian's static busybox, one layer.

Used by ``scripts/demo.py``; ``python scripts/demo_image.py DIR`` builds one alone.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "echo", "cat", "ls", "env", "id", "pwd", "sleep", "true", "false")
MTIME = 1_700_000_000
TAG = "latest"


def layer_tar(busybox: Path) -> bytes:
    """An uncompressed layer: /bin/busybox, applet links, /etc/passwd, /tmp."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("bin", "etc", "tmp"):
            _add(tar, tarfile.DIRTYPE, name, mode=0o1777 if name == "tmp" else 0o755)
        data = busybox.read_bytes()
        _add(tar, tarfile.REGTYPE, "bin/busybox", data=data, mode=0o755)
        for applet in APPLETS:
            _add(tar, tarfile.SYMTYPE, f"bin/{applet}", link="busybox")
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"
        _add(tar, tarfile.REGTYPE, "etc/passwd", data=passwd)
        _add(tar, tarfile.REGTYPE, "etc/group", data=b"root:x:0:\nnogroup:x:65534:\n")
    return out.getvalue()


def _add(
    tar: tarfile.TarFile,
    kind: bytes,
    name: str,
    data: bytes = b"",
    mode: int = 0o644,
    link: str = "",
) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.linkname = kind, mode, MTIME, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if info.size else None)


def build_layout(target: Path, busybox: Path = BUSYBOX) -> str:
    """Write an OCI image layout with one image tagged ``latest``; its digest."""
    blobs = target / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    raw = layer_tar(busybox)
    layer = _blob(blobs, gzip.compress(raw, mtime=0))
    config = _blob(blobs, _json(_config(_sha(raw))))
    manifest_bytes = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        **layer}],
        }
    )  # fmt: skip
    manifest = _blob(blobs, manifest_bytes)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **manifest,
                "annotations": {"org.opencontainers.image.ref.name": TAG},
            }
        ],
    }
    (target / "index.json").write_bytes(_json(index))
    (target / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return str(manifest["digest"])


def _config(diff_id: str) -> dict[str, object]:
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Cmd": ["echo", "hello from the sandpull demo image"],
            "Env": ["PATH=/bin", "DEMO=sandpull"],
            "WorkingDir": "/tmp",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "sandpull demo: static busybox"}],
    }


def _blob(blobs: Path, data: bytes) -> dict[str, object]:
    digest = _sha(data)
    (blobs / digest.removeprefix("sha256:")).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


if __name__ == "__main__":
    print(build_layout(Path(sys.argv[1])))
