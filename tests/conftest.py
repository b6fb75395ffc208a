"""Shared fixtures: real servers on loopback, so no test mocks what can run here.

- ``postgres_server`` (session): a throwaway PostgreSQL cluster (initdb + pg_ctl) on a free
  127.0.0.1 port, removed at the end. ``postgres_url`` (function): a fresh, empty database on it.
- ``http_server`` (function): a stdlib HTTP server on 127.0.0.1 in a thread, whose routes a test
  defines as small functions; ``serve_pages`` on it serves records as paginated JSON.
- ``tiny_pipeline`` (session): the tiny pipeline reproduced and committed once per test session
  (tests/helpers/repo.py); tests that change it work on a ``clone_repo`` of it.
- ``redis_server`` (function): a fresh redis-server on loopback and a unix socket (tests/helpers/redis.py).
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from filelock import FileLock

from helpers.net import free_port
from helpers.redis import RedisServer, redis_server_binary
from helpers.repo import build_tiny_pipeline


@pytest.fixture
def closed_port() -> int:
    return free_port()


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def _postgres_bin() -> Path:
    """The newest installed PostgreSQL binaries; FRAUDPIPE_PG_BIN overrides."""
    candidates = [os.environ.get("FRAUDPIPE_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    if on_path := shutil.which("pg_ctl"):
        candidates.append(str(Path(on_path).parent))
    for candidate in filter(None, candidates):
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH: "
        "install them (Debian: `apt-get install postgresql`) or set FRAUDPIPE_PG_BIN. "
        "The postgres tests are not optional.",
        pytrace=False,
    )


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str = "postgres"
    _names: Iterator[int] = field(default_factory=itertools.count)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # a generated name, not input
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster for this test session (one per xdist worker), trust auth on loopback."""
    bindir = _postgres_bin()
    # initdb refuses to run as root: as root, run the server as the `postgres` user in a
    # directory it owns (pytest's tmp dirs are private to root, so use a fresh one in /tmp).
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="fraudpipe-pg-"))
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    data, log = root / "data", root / "server.log"

    def run(*cmd: str) -> None:
        proc = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)
        if proc.returncode:
            details = log.read_text() if log.exists() else ""
            pytest.fail(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}{details}", pytrace=False
            )

    run(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
        "--no-instructions",
    )
    port = free_port()
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(log),
        "-w",
        "-t",
        "60",
        "-o",
        f"-F -p {port} -k {root} -c listen_addresses=127.0.0.1",
        "start",
    )
    try:
        yield PostgresServer("127.0.0.1", port)
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of a fresh empty database (psycopg 3 driver)."""
    return postgres_server.create_database()


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]  # first value of each query parameter
    headers: dict[str, str]
    body: bytes


#: A route handler returns (status, body) or (status, body, headers); a dict or list body is sent
#: as JSON, str/bytes as they are.
Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Handler = Callable[[Request], Reply]


class LoopbackServer:
    """A real HTTP/1.1 server on 127.0.0.1 with routes defined by the test; logs every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[Request] = []
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                request = Request(
                    self.command,
                    parts.path,
                    {k: v[0] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                server.requests.append(request)
                handler = server.routes.get(parts.path)
                reply: Reply = handler(request) if handler else (404, {"detail": "no such route"})
                status, body, headers = (*reply, {})[:3] if len(reply) == 2 else reply  # type: ignore[misc]
                if isinstance(body, (dict, list)):
                    body, headers = json.dumps(body).encode(), {"content-type": "application/json", **headers}
                elif isinstance(body, str):
                    body = body.encode()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        # A short poll interval: shutdown() waits for the serve loop to notice (0.5 s by default).
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, handler: Handler) -> str:
        """Serve ``handler`` at ``path``; returns the full URL."""
        self.routes[path] = handler
        return self.url(path)

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def serve_pages(
        self,
        path: str,
        records: Sequence[dict[str, Any]],
        *,
        size_param: str = "limit",
        default_size: int = 100,
        fail_once: Sequence[int] = (),
        absolute_next: bool = False,
    ) -> str:
        """Serve ``records`` as ``{"records": [...], "next": <url of next page or null>}``.

        Pages are numbered from 0 through an ``offset`` parameter; each page index in
        ``fail_once`` answers 500 the first time it is asked for. ``next`` is a relative URL
        unless ``absolute_next``. Returns the URL of the first page.
        """
        failed: set[int] = set()

        def handler(request: Request) -> Reply:
            size = int(request.query.get(size_param, default_size))
            offset = int(request.query.get("offset", 0))
            page = offset // size
            if page in fail_once and page not in failed:
                failed.add(page)
                return 500, {"detail": "transient failure"}
            nxt = None
            if offset + size < len(records):
                nxt = f"{path}?offset={offset + size}&{size_param}={size}"
                nxt = self.url(nxt) if absolute_next else nxt
            return 200, {"records": list(records[offset : offset + size]), "next": nxt}

        return self.route(path, handler)


@pytest.fixture
def http_server() -> Iterator[LoopbackServer]:
    """A fresh loopback HTTP server per test (it starts in about a millisecond)."""
    with LoopbackServer() as server:
        yield server


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server per test (short socket path: unix sockets allow about 100 characters)."""
    redis_server_binary()
    directory = Path(tempfile.mkdtemp(prefix="fp-redis-", dir="/tmp"))
    server = RedisServer(directory).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The tiny pipeline
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TinyPipeline:
    repo: Path  # never changed by a test: clone it (helpers.repo.clone_repo)
    repro_output: str  # what its one `dvc repro` printed


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> TinyPipeline:
    """Built once per test session: under xdist the first worker to ask builds it in the session's
    shared temporary directory (a file lock), the others wait for it and reuse it."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    repo, log = root / "tiny-pipeline", root / "tiny-pipeline.repro.log"
    with FileLock(str(root / "tiny-pipeline.lock")):
        if not log.exists():
            shutil.rmtree(repo, ignore_errors=True)
            log.write_text(build_tiny_pipeline(repo))
    return TinyPipeline(repo, log.read_text())
