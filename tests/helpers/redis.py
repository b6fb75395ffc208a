"""A throwaway redis-server for the Redis store tests: loopback TCP on a free port and a unix
socket, append-only file on (``appendfsync everysec``, or ``always`` where a test kills Redis and
expects every write back), no RDB."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.net import free_port


@dataclass
class RedisServer:
    directory: Path  # the AOF lives here
    fsync: str = "everysec"  # appendfsync: "always" for a test that kills Redis and expects every write back
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> RedisServer:
        self.port = self.port or free_port()
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            self.fsync,
            "--dir",
            str(self.directory),
            "--protected-mode",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import redis

        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited {self.proc.returncode}: {self.proc.stderr.read().decode()}")
            try:
                client = redis.Redis(unix_socket_path=str(self.socket))
                client.ping()
                while client.info("persistence").get("loading"):  # replaying its AOF
                    time.sleep(0.05)
                client.close()
                return self
            except (redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.05)
        raise AssertionError("redis-server not ready after 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def client(self):
        import redis

        return redis.Redis(unix_socket_path=str(self.socket), decode_responses=True)


def redis_server_binary() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)")
