"""One accepted socket of the built-in HTTP server, plain or TLS, on the event loop.

TLS runs through :class:`ssl.SSLObject` over memory buffers, driven here, rather than
through asyncio's TLS transport: when the handshake fails (a client certificate the server
refuses, which TLS 1.3 only learns after its own Finished) asyncio discards the alert it
was about to send, so the client saw a bare disconnect instead of the TLS error that says
why. Here every byte the TLS engine produces is sent, the alert included, before the
socket closes. Both kinds offer the same three calls to the server: :meth:`recv`,
:meth:`send`, :meth:`close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

READ_SIZE = 16384
"""Bytes asked of the socket per read (a TLS record is at most 16 KiB of data)."""
LINGER_SECONDS = 2.0
"""How long a closing connection keeps reading (and dropping) what the client still sends."""
LINGER_BYTES = 1 << 20


class PlainConnection:
    """A non-blocking accepted socket, read and written through the running loop."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._loop = asyncio.get_running_loop()

    async def recv(self) -> bytes:
        """The next bytes the client sent; ``b""`` at its end of the stream."""
        return await self._loop.sock_recv(self.sock, READ_SIZE)

    async def send(self, data: bytes) -> None:
        """Send all of *data* (returns once the kernel has taken it)."""
        await self._loop.sock_sendall(self.sock, data)

    async def finish(self) -> None:
        """Say the answer is complete (plain TCP: nothing; TLS: ``close_notify``)."""

    async def close(
        self, linger_seconds: float = LINGER_SECONDS, linger_bytes: int = LINGER_BYTES
    ) -> None:
        """Close gracefully: finish, stop sending, then read what the client still sends
        for a moment, so that closing with unread input (which makes the kernel answer
        with a reset) cannot destroy the answer before the client read it."""
        try:
            await asyncio.wait_for(self._finish_and_drain(linger_bytes), linger_seconds)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            self.abort()

    async def _finish_and_drain(self, linger_bytes: int) -> None:
        await self.finish()
        self.sock.shutdown(socket.SHUT_WR)
        seen = 0
        while seen < linger_bytes and (chunk := await self._loop.sock_recv(self.sock, READ_SIZE)):
            seen += len(chunk)

    def abort(self) -> None:
        """Close at once."""
        self.sock.close()


class TLSConnection(PlainConnection):
    """A server-side TLS session over an accepted socket; call :meth:`handshake` first."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        super().__init__(sock)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    async def handshake(self) -> None:
        """Complete the handshake. On failure what TLS wants to tell the client (its alert)
        is sent before the error is raised."""
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
            except ssl.SSLError:
                with contextlib.suppress(OSError):
                    await self._flush()
                raise
            else:
                await self._flush()
                return

    async def recv(self) -> bytes:
        while True:
            try:
                data = self._tls.read(READ_SIZE)
            except ssl.SSLWantReadError:
                await self._flush()  # e.g. the answer to a key update
                if not await self._fill():
                    return b""  # the TCP stream ended without close_notify
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            else:
                await self._flush()
                return data

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self._tls.write(view) :]
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    raise ConnectionResetError("the client closed during a TLS write") from None
        await self._flush()

    async def finish(self) -> None:
        with contextlib.suppress(ssl.SSLError):  # the peer's close_notify is not awaited
            self._tls.unwrap()
        await self._flush()

    async def _flush(self) -> None:
        if self._outgoing.pending:
            await self._loop.sock_sendall(self.sock, self._outgoing.read())

    async def _fill(self) -> bool:
        """Read the next bytes of the TCP stream into the TLS engine; ``False`` at its end."""
        data = await self._loop.sock_recv(self.sock, READ_SIZE + 512)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()
        return bool(data)
