"""A proxy on 127.0.0.1 that answers ``503 Service Unavailable`` to the first request
of each kind (method and path) and passes everything after it through unchanged:
the transient 5xx a real object store or REST daemon gives under load, on demand.

The bytes go through as they are, Host header included, so a presigned URL signed
for the proxy's address stays valid."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass
class RefusingProxy:
    url: str  #: Such as ``http://127.0.0.1:40123``.
    #: The requests answered 503, as ``(method, path)``, in order.
    refused: list[tuple[str, str]] = field(default_factory=list)


def _head(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _refuse(connection: socket.socket, data: bytes) -> None:
    """Read the request's body (unless the client waits for ``100 Continue``), then
    answer 503, as a server that is busy does."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").lower().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    if headers.get("expect") != "100-continue":
        left = int(headers.get("content-length", 0)) - len(body)
        while left > 0 and (chunk := connection.recv(min(left, 1 << 20))):
            left -= len(chunk)
    connection.sendall(REFUSAL)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while chunk := source.recv(1 << 20):
            target.sendall(chunk)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def _serve(connection: socket.socket, target_port: int, proxy: RefusingProxy, seen: set) -> None:
    with connection:
        data = _head(connection)
        method, path, *_ = [*data.split(b"\r\n", 1)[0].decode("latin-1").split(" "), "", ""]
        kind = (method, path.split("?", 1)[0])
        if kind not in seen:
            seen.add(kind)
            proxy.refused.append(kind)
            _refuse(connection, data)
            return
        with socket.create_connection(("127.0.0.1", target_port)) as target:
            target.sendall(data)
            back = threading.Thread(target=_pipe, args=(target, connection), daemon=True)
            back.start()
            _pipe(connection, target)
            back.join()


@contextmanager
def refusing_proxy(target_port: int) -> Iterator[RefusingProxy]:
    """A :class:`RefusingProxy` in front of ``127.0.0.1:target_port`` while the block
    runs; its threads and sockets are gone after it."""
    listener = socket.create_server(("127.0.0.1", 0))
    proxy = RefusingProxy(f"http://127.0.0.1:{listener.getsockname()[1]}")
    seen: set[tuple[str, str]] = set()
    workers: list[threading.Thread] = []

    def accept() -> None:
        with suppress(OSError):
            while True:
                connection, _ = listener.accept()
                worker = threading.Thread(
                    target=_serve, args=(connection, target_port, proxy, seen), daemon=True
                )
                worker.start()
                workers.append(worker)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield proxy
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        acceptor.join(5)
        for worker in workers:
            worker.join(5)
