"""One deadline for a whole HTTP exchange, from connect to the last byte of the answer.

httpx's timeouts bound each socket operation, so a server that sends one byte of its status line or
headers every second never times out. :class:`Cutoff` watches the exchange's sockets (httpcore's ``trace``
extension reports each one as it is connected) and, once the deadline passes, shuts them down: the
blocked read returns at once and the exchange fails, however the server trickles. The caller sees that
:attr:`Cutoff.fired` and reports a timeout. A connection must be fresh for its socket to be seen, so the
client that uses it keeps no idle connections.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any


class Cutoff:
    """Shut down every socket of one exchange ``seconds`` after it was made; pass :meth:`trace` as the
    request's ``extensions={"trace": ...}`` and call :meth:`cancel` when the exchange ends."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: remember the socket of each connection as it is connected."""
        if not event.endswith((".connect_tcp.complete", ".connect_unix_socket.complete")):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)
