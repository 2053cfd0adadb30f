"""A real PostgreSQL server from Debian's `postgresql` package, in a temporary directory.

Started by the test run itself (and by bench/), never a system service: initdb into a fresh
folder, pg_ctl on 127.0.0.1 and a free port, stopped and removed at the end. PostgreSQL
refuses to run as root, so as root (CI, `make test`) its programs run as the package's own
`postgres` user through runuser.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid

import psycopg

USER = "shop"


def bin_dir():
    """The newest /usr/lib/postgresql/<version>/bin with initdb; `make test` installs it."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version_key)
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: `sudo apt-get install -y postgresql` (make test does)"
        )
    return os.path.dirname(found[-1])


def version_key(path):
    return int(path.split("/")[4].split(".")[0])


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """initdb + pg_ctl start; `database()` makes a fresh empty database and returns its URL."""

    def __init__(self, durable=False):
        self.bin = bin_dir()
        self.folder = tempfile.mkdtemp(prefix="shop-postgres-")
        self.as_user = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.data = os.path.join(self.folder, "data")
        self.run("initdb", "-D", self.data, "-U", USER, "-A", "trust", "-E", "UTF8")
        self.run("initdb", "--version")
        settings = [
            "-h 127.0.0.1",
            f"-p {self.port}",
            f"-k {self.folder}",
            # Two gunicorn masters with threads, the test client and reconcile workers.
            "-c max_connections=300",
        ]
        if not durable:
            # Tests check behaviour, not durability: no fsync, as a tmpfs would be.
            settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self.run(
            "pg_ctl", "-D", self.data, "-l", os.path.join(self.folder, "log"), "-w", "-t", "60",
            "-o", " ".join(settings), "start",
        )  # fmt: skip

    def run(self, program, *args):
        subprocess.run(
            [*self.as_user, os.path.join(self.bin, program), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=self.folder,
        )

    def url(self, name="postgres"):
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"

    def database(self, template=None):
        """A new database (a copy of template, when given); returns its URL."""
        name = f"shop_{uuid.uuid4().hex[:12]}"
        sql = f'CREATE DATABASE "{name}"'
        if template:
            sql += f' TEMPLATE "{template}"'
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(sql)
        return self.url(name)

    def stop(self):
        try:
            self.run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
