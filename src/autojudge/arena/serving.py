"""How `python -m autojudge.arena` runs uvicorn: fewer system calls per answer, shorter
pauses of the event loop.

- uvicorn writes an answer's status line and headers, then its body, each with its own
  `send` to the socket (uvloop writes at once). `OneWriteProtocol` holds the head back
  until the body follows, normally in the same step of the event loop, and sends both
  with one call; a head whose body does not follow (a stream that starts later) goes out
  at the loop's next turn. On the loaded benchmark the separate head writes were an
  eighth of the server's CPU.
- `tune_for_serving`: the interpreter settings the vote path needs (see there).

Example:
    >>> uvicorn.Config(app, http=one_write_protocol())       # doctest: +SKIP
"""
from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any


class OneWriteTransport:
    """A transport proxy that sends a response head together with what follows it."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: Any) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.writelines((held, data))  # one writev
        elif bytes(data[:5]) == b"HTTP/":  # a head (or an interim 100 Continue)
            self._held = bytes(data)
            self._loop.call_soon(self.flush)  # its body normally comes first
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send a held head now."""
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's
        return getattr(self._transport, name)


def one_write_protocol() -> Any:
    """uvicorn's httptools protocol over a `OneWriteTransport`; "auto" (uvicorn's
    choice) where httptools is not installed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools missing: uvicorn's pure-Python h11 protocol
        return "auto"

    class OneWriteProtocol(HttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(OneWriteTransport(transport, self.loop))

    return OneWriteProtocol


def tune_for_serving() -> None:
    """Interpreter settings for a server that answers while a thread commits votes.

    A full garbage collection walks every object the imports made (about 80,000: tens
    of milliseconds, hundreds on a busy machine, with the event loop stopped), so they
    are frozen out of it: what is loaded now stays for the server's life anyway. What
    remains grows with the votes (the live board's columns, the replay guard), and
    with so few objects left CPython's rule would walk it every few seconds under load:
    a full collection waits for 10 times more young ones than by default (every minute
    or so at hundreds of votes a second; cycles are still freed in the young ones). The
    vote writer gives up the GIL in each SQLite call and waits for the busy event loop
    to hand it back, by default after 5 ms; 1 ms keeps a commit's wait short."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)
    sys.setswitchinterval(0.001)
