"""A throwaway PostgreSQL server for the tests: initdb in a temp directory, started on a free port.

Runs the server as the `postgres` system user when the tests run as root (PostgreSQL refuses root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.harness import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: run scripts/install-system-deps.sh")
    return found[-1]


class PostgresServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="eb-pg-"))
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        self._databases = 0

    def _run(self, *args: str) -> None:
        cmd = list(args) if self.user is None else ["runuser", "-u", self.user, "--", *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def start(self) -> PostgresServer:
        if self.user:
            shutil.chown(self.dir, self.user)
        self._run(_bin("initdb"), "-D", str(self.dir / "data"), "-U", "bridge", "--auth=trust", "-E", "UTF8")
        return self.resume()

    def resume(self) -> PostgresServer:
        """(Re)start the server on its data and port."""
        self._run(_bin("pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-t", "30", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        return self

    def pause(self) -> None:
        """Stop the server as an outage would (connections cut), keeping its data for `resume`."""
        self._run(_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://bridge@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """An empty database of its own on this server (a test's fleet), as a store URL."""
        self._databases += 1
        name = f"db_{self._databases}"
        with psycopg.connect(f"postgresql://bridge@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
