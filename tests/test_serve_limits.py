"""Slow and vanishing clients, with raw sockets against a real `fraudpipe serve` on loopback (issue 18,
item 5): each slow connection is answered 408 and closed within its timeout, the service answers
others meanwhile, and a client that hangs up is counted as such (499), not as a server error."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from helpers.serve import Server, world

TIMEOUT = 2.0  # --header-timeout and --body-timeout of the server under test
BODY = b'{"transaction_id": 1}'


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _until_closed(sock: socket.socket, deadline: float, trickle: bytes = b"") -> tuple[bytes, float | None]:
    """Everything the server sends until it closes the connection, and when it closed it (monotonic;
    None: still open at ``deadline``); ``trickle``: one byte of it sent every 0.2 s meanwhile (a slowloris)."""
    received = b""
    sock.settimeout(0.2)
    sent = 0
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if sent < len(trickle):
                try:
                    sock.sendall(trickle[sent : sent + 1])
                except OSError:
                    return received, time.monotonic()
                sent += 1
            continue
        except ConnectionResetError:
            return received, time.monotonic()
        if not chunk:
            return received, time.monotonic()
        received += chunk
    return received, None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    w, tmp = world(), tmp_path_factory.mktemp("limits")
    args = ("--header-timeout", str(TIMEOUT), "--body-timeout", str(TIMEOUT), "--limit-concurrency", "1000")
    with Server(tmp, w.bundle_dir, w.state_dir, tmp / "journal", args) as server:
        yield server


def test_slow_clients_get_408_and_are_closed_while_others_are_answered(server):
    head = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    kinds = {
        "idle": b"",  # connects, sends nothing
        "slow headers": head,  # headers never finished
        "trickled headers": head + b"X-Slow: " + b"a" * 200,  # a byte every 0.2 s: the deadline is not reset
        "slow body": head + b"Content-Length: 1000\r\n\r\n" + BODY,  # less body than declared
    }
    sockets = [(kind, _connect(server.port)) for kind in kinds for _ in range(50)]  # 200 connections
    opened = time.monotonic()
    for kind, sock in sockets:
        if kind != "trickled headers":
            sock.sendall(kinds[kind])
    results: dict[int, tuple[bytes, float | None]] = {}
    deadline = opened + TIMEOUT + 10

    def watch(i: int, kind: str, sock: socket.socket) -> None:
        results[i] = _until_closed(sock, deadline, kinds[kind] if kind == "trickled headers" else b"")

    watchers = [threading.Thread(target=watch, args=(i, k, s)) for i, (k, s) in enumerate(sockets)]
    for t in watchers:
        t.start()
    answered = [server.client.get("/healthz").status_code for _ in range(5)]  # meanwhile, others are served
    for t in watchers:
        t.join()
    for _, sock in sockets:
        sock.close()

    assert answered == [200] * 5
    still_open = sorted({kind for i, (kind, _) in enumerate(sockets) if results[i][1] is None})
    assert not still_open, f"connections still open {TIMEOUT + 10:g} s after they were opened: {still_open}"
    for i, (kind, _) in enumerate(sockets):
        received, closed = results[i]
        assert closed - opened <= TIMEOUT + 3, (kind, closed - opened)
        if kind == "idle":
            assert received == b"", received  # no request, no answer: closed
        else:
            assert received.startswith(b"HTTP/1.1 408 "), (kind, received[:200])
            assert b"connection: close" in received.lower(), (kind, received)
    body = results[len(sockets) - 1][0]
    assert b'"field":"body"' in body and b"--body-timeout" in body
    metrics = server.client.get("/metrics").text
    assert re.search(r'fraudpipe_http_requests_total\{method="POST",route="/v1/score",status="408"\} 50\.0', metrics)
    assert 'status="500"' not in metrics


def test_a_client_that_hangs_up_mid_body_is_counted_as_499_not_500(server):
    before = server.stderr.read_text()
    for _ in range(3):
        sock = _connect(server.port)
        sock.sendall(
            b"POST /v1/labels HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
            + BODY
        )
        time.sleep(0.2)
        sock.close()
    end = time.monotonic() + 10
    while time.monotonic() < end:
        metrics = server.client.get("/metrics").text
        if 'route="/v1/labels",status="499"} 3.0' in metrics:
            break
        time.sleep(0.1)
    assert 'fraudpipe_http_requests_total{method="POST",route="/v1/labels",status="499"} 3.0' in metrics, metrics
    assert 'status="500"' not in metrics
    assert "Traceback" not in server.stderr.read_text()[len(before) :]
