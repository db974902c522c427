"""The pull benchmark: sandpull against containerd, podman, skopeo + umoci and a floor.

``bench/run.py`` is the entry point; see ``bench/README.md`` for the method.
"""
