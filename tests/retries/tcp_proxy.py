"""A TCP proxy on loopback that really breaks connections, for fault tests.

``FaultProxy(upstream_port)`` listens on 127.0.0.1 (a free port) and forwards every accepted
connection to ``127.0.0.1:upstream_port``, byte for byte, from one selector thread. Faults are
real socket events, as the client's driver sees them when a server, a load balancer or the
network drops a connection:

- :meth:`refuse` ``n``: the next ``n`` connections are accepted and reset at once (RST), before
  anything reaches the server (a failure at connect time);
- :meth:`reset_all`: reset every open connection now (both sides; RST to the client);
- :meth:`cut_after` ``n``: once ``n`` more bytes went from servers to clients, reset every open
  connection (a cut in the middle of a streamed result);
- :meth:`reset_requests` ``n`` (for HTTP): the next ``n`` requests are not forwarded; their
  connection is reset when the request arrives; with ``deliver=True`` the request is forwarded
  and the connection is reset when the server's answer comes back (the server did the work,
  the client never hears of it).

``accepted`` counts connections, ``refused`` and ``resets`` those refused and reset so far,
``to_client_bytes`` the bytes forwarded from servers to clients. Only loopback.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

LOOPBACK = "127.0.0.1"
_CHUNK = 65536
_HIGH_WATER = 1 << 20  # stop reading a side while its peer has this much unsent


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST (SO_LINGER 0), not a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


@dataclass(eq=False)
class _Pipe:
    client: socket.socket
    server: socket.socket
    to_client: bytearray = field(default_factory=bytearray)
    to_server: bytearray = field(default_factory=bytearray)
    reset_on_answer: bool = False
    closed: bool = False


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = LOOPBACK) -> None:
        if upstream_host != LOOPBACK:
            raise ValueError("the fault proxy only forwards to loopback")
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._commands: list[tuple[Callable[[], Any], threading.Event]] = []
        self._lock = threading.Lock()
        self._pipes: set[_Pipe] = set()
        self._refuse = 0
        self._cut_after: int | None = None
        self._request_resets = 0
        self._deliver_requests = False
        self.accepted = 0
        self.refused = 0
        self.to_client_bytes = 0
        self.resets = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)

    # ------------------------------------------------------------------ control (any thread)

    def start(self) -> FaultProxy:
        self._selector.register(self._listener, selectors.EVENT_READ, ("accept", None))
        self._selector.register(self._wake_read, selectors.EVENT_READ, ("wake", None))
        self._thread.start()
        return self

    def close(self) -> None:
        self._do(self._stop)
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def open_connections(self) -> int:
        return self._do(lambda: len(self._pipes))

    def refuse(self, count: int) -> None:
        def arm() -> None:
            self._refuse = count

        self._do(arm)

    def reset_all(self) -> int:
        """Reset every open connection; return how many."""
        return self._do(self._reset_all)

    def cut_after(self, count: int) -> None:
        def arm() -> None:
            self._cut_after = count

        self._do(arm)

    def reset_requests(self, count: int, *, deliver: bool = False) -> None:
        def arm() -> None:
            self._request_resets = count
            self._deliver_requests = deliver

        self._do(arm)

    def _do(self, command: Callable[[], Any]) -> Any:
        """Run ``command`` on the proxy thread, wait for it and return its result."""
        done = threading.Event()
        result: list[Any] = []
        with self._lock:
            self._commands.append((lambda: result.append(command()), done))
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")
        if not done.wait(5):
            raise TimeoutError("fault proxy did not answer")
        return result[0] if result else None

    # ------------------------------------------------------------------ proxy thread

    def _run(self) -> None:
        while not self._stopping:
            for key, mask in self._selector.select(timeout=0.5):
                kind, pipe = key.data
                if kind == "accept":
                    self._accept()
                elif kind == "wake":
                    self._run_commands()
                elif not pipe.closed:
                    self._service(pipe, key.fileobj, mask)
        for pipe in list(self._pipes):
            self._close_pipe(pipe, reset=True)
        self._selector.close()
        self._listener.close()
        self._wake_read.close()
        self._wake_write.close()

    def _run_commands(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_read.recv(4096)
        with self._lock:
            commands, self._commands = self._commands, []
        for command, done in commands:
            try:
                command()
            finally:
                done.set()

    def _stop(self) -> None:
        self._stopping = True

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        self.accepted += 1
        if self._refuse > 0:
            self._refuse -= 1
            self.refused += 1
            _reset(client)
            return
        try:
            server = socket.create_connection(self._upstream, timeout=5)
        except OSError:
            _reset(client)
            return
        for sock in (client, server):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pipe = _Pipe(client, server)
        self._pipes.add(pipe)
        self._selector.register(client, selectors.EVENT_READ, ("pipe", pipe))
        self._selector.register(server, selectors.EVENT_READ, ("pipe", pipe))

    def _service(self, pipe: _Pipe, sock: Any, mask: int) -> None:
        from_client = sock is pipe.client
        if mask & selectors.EVENT_WRITE:
            self._flush(pipe, sock)
            if pipe.closed:
                return
        if mask & selectors.EVENT_READ:
            try:
                data = sock.recv(_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                self._close_pipe(pipe, reset=True)
                return
            if not data:  # a side closed: hand the other what is left, then close both
                peer = pipe.server if from_client else pipe.client
                left = pipe.to_server if from_client else pipe.to_client
                with contextlib.suppress(OSError):
                    peer.settimeout(2)
                    peer.sendall(left)
                self._close_pipe(pipe, reset=False)
                return
            if from_client:
                self._from_client(pipe, data)
            else:
                self._from_server(pipe, data)
        if not pipe.closed:
            self._update(pipe)

    def _from_client(self, pipe: _Pipe, data: bytes) -> None:
        if self._request_resets > 0 and not pipe.reset_on_answer:
            self._request_resets -= 1
            if not self._deliver_requests:
                self.resets += 1
                self._close_pipe(pipe, reset=True)
                return
            pipe.reset_on_answer = True
        pipe.to_server += data
        self._flush(pipe, pipe.server)

    def _from_server(self, pipe: _Pipe, data: bytes) -> None:
        if pipe.reset_on_answer:
            self.resets += 1
            self._close_pipe(pipe, reset=True)
            return
        if self._cut_after is not None:
            if len(data) >= self._cut_after:
                self.to_client_bytes += self._cut_after
                pipe.to_client += data[: self._cut_after]
                self._flush(pipe, pipe.client)
                self._cut_after = None
                self._reset_all()
                return
            self._cut_after -= len(data)
        self.to_client_bytes += len(data)
        pipe.to_client += data
        self._flush(pipe, pipe.client)

    def _flush(self, pipe: _Pipe, sock: socket.socket) -> None:
        buffer = pipe.to_client if sock is pipe.client else pipe.to_server
        while buffer:
            try:
                sent = sock.send(buffer)
            except BlockingIOError:
                return
            except OSError:
                self._close_pipe(pipe, reset=True)
                return
            del buffer[:sent]

    def _update(self, pipe: _Pipe) -> None:
        """Write interest where data waits; stop reading a side whose peer lags behind."""
        for sock, outgoing, incoming in (
            (pipe.client, pipe.to_client, pipe.to_server),
            (pipe.server, pipe.to_server, pipe.to_client),
        ):
            events = 0
            if len(incoming) < _HIGH_WATER:  # this side's data goes to the other: room left?
                events |= selectors.EVENT_READ
            if outgoing:
                events |= selectors.EVENT_WRITE
            if events == 0:
                events = selectors.EVENT_WRITE if outgoing else selectors.EVENT_READ
            self._selector.modify(sock, events, ("pipe", pipe))

    def _reset_all(self) -> int:
        pipes = list(self._pipes)
        for pipe in pipes:
            self.resets += 1
            self._close_pipe(pipe, reset=True)
        return len(pipes)

    def _close_pipe(self, pipe: _Pipe, *, reset: bool) -> None:
        if pipe.closed:
            return
        pipe.closed = True
        self._pipes.discard(pipe)
        for sock in (pipe.client, pipe.server):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            if reset:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()


@contextlib.contextmanager
def fault_proxy(upstream_port: int) -> Iterator[FaultProxy]:
    with FaultProxy(upstream_port) as proxy:
        yield proxy
