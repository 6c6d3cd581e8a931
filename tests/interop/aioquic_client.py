"""An HTTP/3 client on aioquic, a second QUIC and HTTP/3 implementation, for
tests/http3.rs: it asks zkgate at HOST:PORT (naming SNI, trusting CAFILE)
for each request given as METHOD:PATH[:BODY_BYTES] and prints one JSON line
per answer: status, headers, body length and the body when it is text.
"""

import asyncio
import json
import sys

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamReset


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.pending = {}

    def quic_event_received(self, event):
        if isinstance(event, StreamReset) and event.stream_id in self.pending:
            future, _ = self.pending.pop(event.stream_id)
            future.set_exception(ConnectionError(f"stream reset: {event.error_code}"))
        for h3_event in self.h3.handle_event(event):
            if h3_event.stream_id not in self.pending:
                continue
            future, answer = self.pending[h3_event.stream_id]
            if isinstance(h3_event, HeadersReceived):
                answer["headers"].extend(h3_event.headers)
            elif isinstance(h3_event, DataReceived):
                answer["body"] += h3_event.data
            if h3_event.stream_ended:
                del self.pending[h3_event.stream_id]
                future.set_result(answer)

    async def request(self, method, authority, path, body):
        stream = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
        ]
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
        self.h3.send_headers(stream, headers, end_stream=not body)
        if body:
            self.h3.send_data(stream, body, end_stream=True)
        future = asyncio.get_running_loop().create_future()
        self.pending[stream] = (future, {"headers": [], "body": b""})
        self.transmit()
        return await asyncio.wait_for(future, 10)


async def main(host, port, sni, cafile, requests):
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=sni)
    configuration.load_verify_locations(cafile)
    async with connect(host, port, configuration=configuration, create_protocol=Client) as client:
        for spec in requests:
            method, path, *size = spec.split(":")
            body = bytes(i % 251 for i in range(int(size[0]))) if size else b""
            answer = await client.request(method, sni, path, body)
            headers = {k.decode(): v.decode() for k, v in answer["headers"]}
            body = answer["body"]
            try:
                text = body.decode()
            except UnicodeDecodeError:
                text = None
            print(json.dumps({
                "status": int(headers.pop(":status")),
                "headers": headers,
                "length": len(body),
                "text": text,
            }), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]))
