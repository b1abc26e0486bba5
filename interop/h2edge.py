#!/usr/bin/env python3
"""HTTP/2 edge cases against sluice, driven frame by frame with python3-h2.

    h2edge.py HOST PORT CAFILE CASE

CASE is one of:
  zero-window  SETTINGS_INITIAL_WINDOW_SIZE 0: headers come, no DATA until
               WINDOW_UPDATE; then windows opened 16 KiB at a time until the
               whole body is in, its sha256 equal to the server's.
  trailers     POST with request trailers; the response's trailers carry the
               body's sha256 and echo the request's.
  rst          RST_STREAM(CANCEL) after the first DATA of a slow response;
               the connection goes on: a second request on it succeeds.
Prints OK and exits 0, or names what went wrong and exits 1.
"""
import hashlib
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


class Client:
    def __init__(self, host, port, ca, settings=None):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection((host, int(port)), timeout=20)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        if self.sock.selected_alpn_protocol() != "h2":
            fail("ALPN chose %r" % self.sock.selected_alpn_protocol())
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()

    def flush(self):
        self.sock.sendall(self.conn.data_to_send())

    def events(self, timeout=20.0):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return None
        if not data:
            fail("the connection closed")
        evs = self.conn.receive_data(data)
        self.flush()
        for e in evs:
            if isinstance(e, h2.events.ConnectionTerminated):
                fail("GOAWAY %s" % e.error_code)
        return evs

    def request(self, path, method="GET", end=True, extra=()):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "https"), (":authority", "localhost"), (":path", path)] + list(extra)
        self.conn.send_headers(sid, hdrs, end_stream=end)
        self.flush()
        return sid

    def response(self, sid, ack=True):
        """Reads one whole response; returns (headers, body, trailers)."""
        headers, body, trailers = {}, b"", {}
        deadline = time.time() + 30
        while time.time() < deadline:
            for e in self.events() or []:
                if getattr(e, "stream_id", None) != sid:
                    continue
                if isinstance(e, h2.events.ResponseReceived):
                    headers = dict(e.headers)
                elif isinstance(e, h2.events.DataReceived):
                    body += e.data
                    if ack:
                        self.conn.acknowledge_received_data(e.flow_controlled_length, sid)
                        self.flush()
                elif isinstance(e, h2.events.TrailersReceived):
                    trailers = dict(e.headers)
                elif isinstance(e, h2.events.StreamReset):
                    fail("stream %d reset: %s" % (sid, e.error_code))
                elif isinstance(e, h2.events.StreamEnded):
                    return headers, body, trailers
        fail("no whole response on stream %d" % sid)


def zero_window(host, port, ca):
    c = Client(host, port, ca, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    n = 200000
    sid = c.request("/bytes?n=%d&seed=9" % n)
    headers, body, ended = None, b"", False
    stop = time.time() + 1.0
    while time.time() < stop:  # a second with a zero window: headers only
        for e in c.events(timeout=max(0.01, stop - time.time())) or []:
            if isinstance(e, h2.events.ResponseReceived):
                headers = dict(e.headers)
            elif isinstance(e, h2.events.DataReceived) and e.data:
                fail("DATA (%d bytes) while the stream window was 0" % len(e.data))
            elif isinstance(e, h2.events.StreamReset):
                fail("stream reset while the window was 0: %s" % e.error_code)
    if headers is None or headers.get(":status") != "200":
        fail("no 200 head while the window was 0: %r" % headers)
    # Open the stream window 16 KiB at a time, the connection's as data comes.
    c.conn.increment_flow_control_window(16384, stream_id=sid)
    c.flush()
    deadline = time.time() + 30
    while not ended and time.time() < deadline:
        for e in c.events() or []:
            if isinstance(e, h2.events.DataReceived):
                body += e.data
                c.conn.increment_flow_control_window(e.flow_controlled_length)
                if e.flow_controlled_length:
                    try:
                        c.conn.increment_flow_control_window(e.flow_controlled_length, stream_id=sid)
                    except h2.exceptions.StreamClosedError:
                        pass  # the end came in the same read
                    except h2.exceptions.ProtocolError:
                        pass
                c.flush()
            elif isinstance(e, h2.events.StreamEnded) and e.stream_id == sid:
                ended = True
            elif isinstance(e, h2.events.StreamReset):
                fail("stream reset: %s" % e.error_code)
    if not ended or len(body) != n:
        fail("%d of %d bytes, ended %s" % (len(body), n, ended))
    if hashlib.sha256(body).hexdigest() != headers.get("x-body-sha256"):
        fail("sha256 differs from the server's")


def trailers(host, port, ca):
    c = Client(host, port, ca)
    body = bytes((i * 13) & 0xFF for i in range(100000))
    sum_ = hashlib.sha256(body).hexdigest()
    sid = c.request("/echo", method="POST", end=False)
    i = 0
    while i < len(body):  # within the windows sluice grants
        w = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size, len(body) - i)
        if w <= 0:
            c.events()
            continue
        c.conn.send_data(sid, body[i:i + w])
        c.flush()
        i += w
    c.conn.send_headers(sid, [("x-upload-sha256", sum_)], end_stream=True)
    c.flush()
    headers, got, tr = c.response(sid)
    if headers.get(":status") != "200":
        fail("status %r: %r" % (headers.get(":status"), got[:200]))
    if got != body:
        fail("echoed %d bytes, not the upload" % len(got))
    if headers.get("x-request-trailers") != "1":
        fail("the upstream saw no request trailers")
    if tr.get("x-body-sha256") != sum_ or tr.get("x-echo-trailer") != sum_:
        fail("response trailers %r" % tr)


def rst(host, port, ca):
    c = Client(host, port, ca)
    sid = c.request("/slow?chunks=50&ms=20&size=1000")
    reset = False
    deadline = time.time() + 20
    while not reset and time.time() < deadline:
        for e in c.events() or []:
            if isinstance(e, h2.events.DataReceived) and e.stream_id == sid and e.data:
                c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                c.flush()
                reset = True
                break
    if not reset:
        fail("no DATA to reset after")
    # The connection carries on: a new request on it is whole.
    sid2 = c.request("/bytes?n=50000&seed=2")
    headers, body, _ = c.response(sid2)
    if headers.get(":status") != "200" or hashlib.sha256(body).hexdigest() != headers.get("x-body-sha256"):
        fail("the request after the reset: %r, %d bytes" % (headers.get(":status"), len(body)))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        fail(__doc__)
    host, port, ca, case = sys.argv[1:]
    {"zero-window": zero_window, "trailers": trailers, "rst": rst}[case](host, port, ca)
    print("OK")
