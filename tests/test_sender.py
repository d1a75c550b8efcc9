"""The sender: its bound on requests in flight holds across its pools, and its connections are kept and reused."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bridge.providers.base import TryLater
from bridge.sender import Sender


class _Server:
    """A real HTTP/1.1 server on loopback, counting the requests out at once and the connections it was given.
    It holds its answers until `expect` requests are out at once (or 5 s passed), so that a sender allowed more
    would have them out too, however slowly the machine opens its connections."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.full = asyncio.Event()
        self.now = self.most = self.connections = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.now += 1
                self.most = max(self.most, self.now)
                if self.now >= self.expect:
                    self.full.set()
                try:
                    await asyncio.wait_for(self.full.wait(), 5.0)
                except TimeoutError:
                    pass
                await asyncio.sleep(0.01)  # the others that a looser bound would let out come in meanwhile
                self.now -= 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"


@pytest.mark.parametrize("max_in_flight", [1, 6, 32])
def test_no_more_requests_in_flight_than_the_bound_and_connections_reused(max_in_flight: int) -> None:
    async def scenario() -> tuple[_Server, list[int]]:
        server = _Server(max_in_flight)
        url = await server.start()
        sender = Sender(5.0, max_in_flight)
        try:
            for _ in range(3):  # three waves: the connections of the first are reused by the others
                answers = await asyncio.gather(*(sender.send(httpx.Request("GET", url))
                                                 for _ in range(2 * max_in_flight)))
        finally:
            await sender.aclose()
            server.server.close()
        return server, [a.status_code for a in answers]

    server, statuses = asyncio.run(scenario())
    assert statuses == [200] * (2 * max_in_flight)
    assert server.most == max_in_flight
    assert server.connections == max_in_flight


def test_no_answer_is_try_later() -> None:
    async def scenario() -> None:
        sender = Sender(1.0, 4)
        try:
            with pytest.raises(TryLater, match="talking to 127.0.0.1"):
                await sender.send(httpx.Request("GET", "http://127.0.0.1:9/"))  # discard port: refused
            assert sender.requests == 1
            answers = await asyncio.gather(*(sender.send(httpx.Request("GET", "http://127.0.0.1:9/"))
                                             for _ in range(8)), return_exceptions=True)
            assert all(isinstance(a, TryLater) for a in answers)  # every slot came back after its failure
        finally:
            await sender.aclose()

    asyncio.run(scenario())
