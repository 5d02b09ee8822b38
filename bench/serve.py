"""Run uvicorn with TCP_NODELAY on every accepted connection, for both servers of the benchmarks.

``uvicorn --workers N`` hands the listening socket to spawned workers, and the connections
they accept then lack TCP_NODELAY: with a response's head and body written separately, Nagle's
algorithm meets the client's delayed ACK and a response can wait 40 ms. Both landlink and tipg
are started through this launcher (in their own venvs) so the benchmark measures the servers.

    python bench/serve.py <uvicorn arguments>
"""

import socket

from uvicorn.protocols.http import h11_impl

_PROTOCOLS = [h11_impl.H11Protocol]
try:
    from uvicorn.protocols.http import httptools_impl

    _PROTOCOLS.append(httptools_impl.HttpToolsProtocol)
except ImportError:  # no httptools: h11 only
    pass


def _patch(cls) -> None:  # type: ignore[no-untyped-def]
    made = cls.connection_made

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return made(self, transport)

    cls.connection_made = connection_made


for _cls in _PROTOCOLS:
    _patch(_cls)

if __name__ == "__main__":
    import uvicorn.main

    uvicorn.main.main()
