"""A TCP front for the test cluster's unix socket that can misbehave like a network (no root,
no iptables): forward, hang up every connection, go silent (accept and never answer: a server
behind a network that drops packets), or cut one connection right after the server answered
its COMMIT (the commit applied, the workstation never told).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

# A simple-protocol Query message "COMMIT" as libpq sends it (psycopg's Transaction commits so),
# and what marks a transaction that writes: every audited step appends to the chain.
COMMIT = b"Q" + struct.pack("!i", 4 + len(b"COMMIT\x00")) + b"COMMIT\x00"
# The same COMMIT queued in a pipelined write (extended protocol): a Parse message of the
# unnamed statement "COMMIT".
PARSE_COMMIT = b"P" + struct.pack("!i", 4 + 1 + len(b"COMMIT\x00") + 2) + b"\x00COMMIT\x00"
APPEND = b"INSERT INTO audit "


class Proxy:
    """127.0.0.1:`port` forwarded to the cluster's socket `target`, until `close`."""

    def __init__(self, target: Path) -> None:
        self._target = str(target)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self.port = int(self._listener.getsockname()[1])
        self.accepted = 0  # connections this proxy accepted (an attempt to connect)
        self.silent = False
        self._cut_next_commit = threading.Event()
        self._marker = APPEND
        self.commits_cut = 0
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def dsn(self, dbname: str, user: str, **options: str) -> str:
        extra = "".join(f" {k}={v}" for k, v in options.items())
        return (
            f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} sslmode=disable "
            f"gssencmode=disable{extra}"
        )

    def hang_up(self) -> None:
        """Close every open connection (a server restart, seen from the workstation)."""
        with self._lock:
            found, self._open = self._open, []
        for sock in found:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut_next_commit(self, containing: bytes = APPEND) -> None:
        """Let the next COMMIT of an audited write (one that sent `containing`, e.g. its
        audit action) reach the server, drop its answer and hang up that connection."""
        self._marker = containing
        self._cut_next_commit.set()

    def close(self) -> None:
        self._stop = True
        self.hang_up()
        self._listener.close()

    def _keep(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.extend(socks)

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _addr = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.silent:
                self._keep(client)  # held open, never read, never answered
                continue
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                server.connect(self._target)
            except OSError:
                client.close()
                continue
            self._keep(client, server)
            cut = threading.Event()
            threading.Thread(
                target=self._pump, args=(client, server, cut, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, cut, False), daemon=True
            ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, cut: threading.Event, up: bool) -> None:
        wrote = False  # this transaction appended the marked audit event (upstream only)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                wrote = wrote or (up and APPEND in data and self._marker in data)
                if up and (COMMIT in data or PARSE_COMMIT in data):
                    if wrote and self._cut_next_commit.is_set():
                        self._cut_next_commit.clear()
                        cut.set()  # the answer to this COMMIT is dropped (below)
                    wrote = False
                elif not up and cut.is_set():
                    self.commits_cut += 1
                    break  # the server answered the COMMIT: it is applied; hang up instead
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def proxy(target: Path) -> Iterator[Proxy]:
    front = Proxy(target)
    try:
        yield front
    finally:
        front.close()
