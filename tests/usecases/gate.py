"""A TCP proxy in front of a registry that holds large responses until opened.

Every connection relays freely until it has sent ``threshold`` bytes towards
the client (manifests and configs stay below that); then it stops until
:meth:`Gate.open` is called, so a test can keep a layer download in progress
for as long as it needs another process to reach a given point.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

_CHUNK = 16 * 1024


@dataclass
class Gate:
    upstream: tuple[str, int]
    threshold: int = 64 * 1024
    host: str = ""
    held: threading.Event = field(default_factory=threading.Event)
    _opened: threading.Event = field(default_factory=threading.Event)
    _listener: socket.socket | None = None

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def open(self) -> None:
        self._opened.set()

    def stop(self) -> None:
        self._opened.set()
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, server, False)).start()
            threading.Thread(target=self._pipe, args=(server, client, True)).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, gated: bool) -> None:
        sent = 0
        try:
            while chunk := source.recv(_CHUNK):
                if gated and sent + len(chunk) > self.threshold:
                    self.held.set()
                    self._opened.wait(timeout=120)
                sink.sendall(chunk)
                sent += len(chunk)
        except OSError:
            return
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
