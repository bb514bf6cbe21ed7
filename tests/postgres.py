"""A throwaway PostgreSQL cluster for tests: initdb in a temp folder, started on a free 127.0.0.1 port.

Runs the server binaries directly (as the `postgres` user when the tests run as root, since PostgreSQL
refuses to run as root). Nothing is installed or configured system-wide; `stop()` removes everything.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from support import free_port

# Where distributions put the server binaries (Debian/Ubuntu, RPM, source builds, Homebrew).
_BINDIR_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
)
SERVER_USER = "postgres"
SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    """No usable PostgreSQL server binaries (or no unprivileged user to run them as) on this machine."""


def _version_key(path: str) -> tuple[int, ...]:
    digits = "".join(c if c.isdigit() else " " for c in path).split()
    return tuple(int(d) for d in digits)


def find_bindir() -> Path:
    """The folder holding initdb and pg_ctl: PG_BINDIR, then PATH, then the usual places (newest first)."""
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for pattern in _BINDIR_GLOBS:
        candidates.extend(sorted(glob.glob(pattern), key=_version_key, reverse=True))
    for candidate in candidates:
        folder = Path(candidate)
        if (
            (folder / "initdb").is_file()
            and (folder / "pg_ctl").is_file()
            and (folder / "postgres").is_file()
        ):
            return folder
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found on PATH, in PG_BINDIR or in "
        "/usr/lib/postgresql/*/bin; install them with `apt-get install -y postgresql`"
    )


def _server_user() -> pwd.struct_passwd | None:
    """The account the server runs as: None for the current user, `postgres` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError as error:
        raise PostgresUnavailable(
            f"tests run as root and there is no {SERVER_USER!r} user to run PostgreSQL as"
        ) from error


@dataclass
class PostgresCluster:
    """One started cluster: its folder, port, and helpers to create and drop databases."""

    bindir: Path
    root: Path
    port: int
    user: pwd.struct_passwd | None
    _databases: set[str] = field(default_factory=set)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of a database in this cluster."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _admin(self):  # noqa: ANN202 - psycopg.Connection
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        )

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """Create a database (empty, or a copy of `template`); returns its name."""
        from psycopg import sql

        name = name or f"t_{uuid.uuid4().hex[:16]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        with self._admin() as connection:
            connection.execute(statement)
        self._databases.add(name)
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection still open on it."""
        from psycopg import sql

        with self._admin() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        self._databases.discard(name)

    def stop(self) -> None:
        """Stop the server (immediate shutdown: nothing in it is worth keeping) and delete its folder."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                _run(self, "pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "30")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _run(cluster: PostgresCluster, program: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(cluster.bindir / program), *args]
    if cluster.user is not None:
        command = ["runuser", "-u", cluster.user.pw_name, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        log = cluster.root / "server.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(
            f"{program} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{tail}".rstrip()
        )
    return result


def start_cluster(attempts: int = 3) -> PostgresCluster:
    """initdb a fresh cluster in a temp folder and start it on a free port (retried if the port was taken)."""
    bindir = find_bindir()
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="twin-pg-"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    cluster = PostgresCluster(bindir=bindir, root=root, port=0, user=user)
    try:
        _run(
            cluster,
            "initdb",
            "-D",
            str(cluster.data_dir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        for attempt in range(attempts):
            cluster.port = free_port()
            try:
                _start(cluster)
                return cluster
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
    except BaseException:
        cluster.stop()
        raise
    raise AssertionError("unreachable")


def _start(cluster: PostgresCluster) -> None:
    # Durability is pointless for a throwaway cluster: fsync off makes CREATE DATABASE and commits fast.
    options = " ".join(
        (
            "-c listen_addresses=127.0.0.1",
            f"-p {cluster.port}",
            f"-c unix_socket_directories={cluster.root}",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c timezone=UTC",
            "-c max_connections=200",
        )
    )
    _run(
        cluster,
        "pg_ctl",
        "start",
        "-D",
        str(cluster.data_dir),
        "-w",
        "-t",
        "60",
        "-l",
        str(cluster.root / "server.log"),
        "-o",
        options,
    )
