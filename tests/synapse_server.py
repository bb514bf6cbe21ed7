"""A real Synapse homeserver for the tests: a temp folder, a test-written config (SQLite, 127.0.0.1 only, every
rate limit raised), started as `python -m synapse.app.homeserver`, users registered through the shared-secret
admin API, stopped and removed at the end."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from support import free_port

SERVER_NAME = "localhost"
SHARED_SECRET = "synapse-test-registration-secret"
START_TIMEOUT = 60.0  # seconds; it starts in about 2 s on an idle machine
UNLIMITED = {"per_second": 10_000, "burst_count": 10_000}  # the defaults make nio sleep through 429s silently
RATE_LIMITS = {
    "rc_message": UNLIMITED, "rc_room_creation": UNLIMITED, "rc_registration": UNLIMITED,
    "rc_login": {"address": UNLIMITED, "account": UNLIMITED, "failed_attempts": UNLIMITED},
    "rc_joins": {"local": UNLIMITED, "remote": UNLIMITED}, "rc_joins_per_room": UNLIMITED,
    "rc_invites": {"per_room": UNLIMITED, "per_user": UNLIMITED, "per_issuer": UNLIMITED},
    "rc_3pid_validation": UNLIMITED, "rc_admin_redaction": UNLIMITED, "rc_key_requests": UNLIMITED,
    "rc_presence": {"per_user": UNLIMITED},
}


class SynapseUnavailable(RuntimeError):
    """Synapse is not installed or did not come up; the message says why."""


@dataclass(frozen=True)
class Account:
    """A registered user: full id and password."""

    user_id: str
    password: str

    @property
    def localpart(self) -> str:
        """'@ada:localhost' -> 'ada'."""
        return self.user_id[1:].split(":")[0]



def homeserver_config(folder: Path, port: int) -> dict[str, object]:
    """The homeserver.yaml for a throwaway test server."""
    return {
        "server_name": SERVER_NAME, "pid_file": str(folder / "homeserver.pid"), "public_baseurl":
        f"http://127.0.0.1:{port}/", "listeners": [{
            "port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False, "x_forwarded": False,
            "resources": [{"names": ["client"], "compress": False}]}],
        "database": {"name": "sqlite3", "args": {"database": str(folder / "homeserver.db")}},
        "log_config": str(folder / "log.yaml"), "media_store_path": str(folder / "media"),
        "signing_key_path": str(folder / "signing.key"), "registration_shared_secret": SHARED_SECRET,
        "report_stats": False, "trusted_key_servers": [], "suppress_key_server_warning": True,
        "bcrypt_rounds": 4, "enable_registration": False, "macaroon_secret_key": "test-macaroon",
        "form_secret": "test-form", "presence": {"enabled": False}, "url_preview_enabled": False,
        **RATE_LIMITS,
    }


def log_config(folder: Path) -> dict[str, object]:
    """Warnings and errors to a file in the folder (read when the server fails to start)."""
    return {
        "version": 1, "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "formatter": "plain",
                              "filename": str(folder / "homeserver.log")}},
        "root": {"level": "WARNING", "handlers": ["file"]}, "disable_existing_loggers": False,
    }


def write_config(folder: Path, port: int) -> Path:
    """Config, logging config and signing key written into the folder; the config's path."""
    from signedjson.key import generate_signing_key, write_signing_keys

    with (folder / "signing.key").open("w") as key_file:
        write_signing_keys(key_file, [generate_signing_key("a_test")])
    (folder / "log.yaml").write_text(yaml.safe_dump(log_config(folder)))
    config = folder / "homeserver.yaml"
    config.write_text(yaml.safe_dump(homeserver_config(folder, port)))
    return config


@dataclass
class SynapseServer:
    """One running homeserver in a temp folder."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        """The client-server API base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait for /health; SynapseUnavailable when it does not come up."""
        config = write_config(self.folder, self.port)
        log = (self.folder / "stdout.log").open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", "synapse.app.homeserver", "-c", str(config)],
                                        cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "SYNAPSE_NO_TLS": "1"})
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SynapseUnavailable(f"synapse exited with {self.process.returncode}: {self._tail()}")
            if self._healthy():
                return
            time.sleep(0.1)
        self.stop()
        raise SynapseUnavailable(f"synapse did not answer /health in {START_TIMEOUT} s: {self._tail()}")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _tail(self) -> str:
        logs = [self.folder / name for name in ("stdout.log", "homeserver.log")]
        return " | ".join(path.read_text(errors="replace")[-1500:] for path in logs if path.exists())

    def register(self, name: str, admin: bool = False) -> Account:
        """A new user through the shared-secret admin API (HMAC-SHA1 over nonce, user, password, admin)."""
        password = f"{name}-password"
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        nonce = httpx.get(endpoint, timeout=10).json()["nonce"]
        message = b"\x00".join([nonce.encode(), name.encode(), password.encode(), b"admin" if admin else b"notadmin"])
        mac = hmac.new(SHARED_SECRET.encode(), message, hashlib.sha1).hexdigest()
        response = httpx.post(endpoint, timeout=10, json={"nonce": nonce, "username": name, "password": password,
                                                          "admin": admin, "mac": mac})
        response.raise_for_status()
        return Account(response.json()["user_id"], password)

    def register_new(self, prefix: str, admin: bool = False) -> Account:
        """A user with a name not used before in this server ('twin1', 'twin2', ...)."""
        return self.register(f"{prefix}{next(self._names)}", admin=admin)

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_synapse() -> SynapseServer:
    """A running Synapse in a new temp folder; SynapseUnavailable when it is not installed or fails."""
    try:
        import synapse  # noqa: F401
    except ImportError as error:
        raise SynapseUnavailable("matrix-synapse is not installed (pip install -e '.[dev]')") from error
    server = SynapseServer(Path(tempfile.mkdtemp(prefix="twin-synapse-")), free_port())
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server
