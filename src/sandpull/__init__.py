"""sandpull: pull container images inside a pod sandbox and run containers from them."""

__version__ = "0.1.0"
