"""Mosquitto 2 as a child process on a free loopback port, for tests and the local demo.

The broker gets a generated configuration in its own temporary directory:
authentication on (password file, optional ACL file), loopback only, a raised
``max_queued_messages`` (the default of 1000 silently drops QoS 1 messages under
load), a packet size limit and, with ``persistence=True``, a save after every change
(so a SIGKILL loses nothing that was acknowledged). :meth:`Mosquitto.stop` leaves
nothing behind.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self

from konak.errors import KonakError

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS: Final = 10.0
STOP_TIMEOUT_SECONDS: Final = 5.0
MAX_QUEUED_MESSAGES: Final = 100_000
# Payloads are limited to 64 KiB by the contract; leave room for topic and properties.
MAX_PACKET_BYTES: Final = 128 * 1024
PORT_ATTEMPTS: Final = 5
# With persistence on, save after every change: Mosquitto's default saves only every 30
# minutes and at a clean exit, so a crash (SIGKILL, power loss) would lose every session
# and queued message since the start, the hub's subscriptions among them.
AUTOSAVE_LINES: Final = ("autosave_on_changes true", "autosave_interval 1")
HUB_CLIENT_ID: Final = "konak-hub"
# What the hub's login may do on a development broker: every Konak topic, nothing else.
HUB_ACLS: Final = (
    {"acltype": "subscribePattern", "topic": "konak/#", "allow": True},
    {"acltype": "publishClientReceive", "topic": "konak/#", "allow": True},
    {"acltype": "publishClientSend", "topic": "konak/#", "allow": True},
)


class BrokerError(KonakError):
    """Mosquitto could not be started or stopped."""

    code = "broker_error"


@dataclass(frozen=True, slots=True)
class AclRule:
    """One ACL line for a user: ``topic read|write|readwrite FILTER``."""

    access: Literal["read", "write", "readwrite"]
    topic: str


@dataclass(frozen=True, slots=True)
class Credentials:
    """A broker login."""

    username: str
    password: str = field(repr=False)


_live: weakref.WeakSet[Mosquitto] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """A broker is a child of this process: never leave one running after it exits."""
    for broker in list(_live):
        broker.stop()


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerError("mosquitto is not installed (Debian: apt-get install mosquitto)")


class Mosquitto:
    """A private Mosquitto broker; use as a context manager or call start()/stop().

    ``users`` maps usernames to passwords; a user with an entry in ``acl`` gets
    exactly those rules, a user without one gets full access (the hub, tests).
    With ``dynsec=True``, ``admin`` manages identities over ``$CONTROL`` and ``hub`` is
    the hub's login, accepted only with ``hub_client_id``.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        acl: Mapping[str, Iterable[AclRule]] | None = None,
        *,
        persistence: bool = False,
        host: str = "127.0.0.1",
        dynsec: bool = False,
        hub_client_id: str = HUB_CLIENT_ID,
    ) -> None:
        self.admin = Credentials("konak-admin", secrets.token_urlsafe(16))
        # With dynsec, the hub's own login: accepted only with ``hub_client_id``, so no other
        # login can take the hub's session over (devices are bound to their own ids too).
        self.hub = Credentials("konak-hub", secrets.token_urlsafe(16))
        self.hub_client_id = hub_client_id
        self._users: dict[str, str] = {self.admin.username: self.admin.password}
        self._users.update(users or {})
        self._acl: dict[str, list[AclRule]] = {u: list(r) for u, r in (acl or {}).items()}
        self.persistence = persistence
        self.host = host
        # With the dynamic security plugin, only the admin is configured here; every other
        # identity is managed at run time over $CONTROL (konak.provisioning.dynsec).
        self.dynsec = dynsec
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> Self:
        """Start the broker and return once it accepts connections."""
        if self._proc is not None:
            raise BrokerError("broker already running")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="konak-mosquitto-"))
        fixed_port = self.port != 0
        for _ in range(1 if fixed_port else PORT_ATTEMPTS):
            if not fixed_port:
                self.port = free_port()
            self._write_files()
            if self._launch():
                _live.add(self)
                logger.info("mosquitto listening on %s:%d", self.host, self.port)
                return self
        raise BrokerError(f"mosquitto did not start; its log says: {self.log_tail()}")

    def stop(self) -> None:
        """Stop the broker and remove its directory."""
        self._terminate()
        _live.discard(self)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def restart(self) -> None:
        """Stop and start again on the same port, keeping the persistence database."""
        self._terminate()
        self.start()

    def kill(self) -> None:
        """Stop the broker abruptly (SIGKILL), keeping its directory, to simulate a crash."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- users and ACLs --------------------------------------------------------------
    def add_user(
        self, username: str, password: str | None = None, acl: Iterable[AclRule] | None = None
    ) -> Credentials:
        """Add (or replace) a user and reload the broker if it is running."""
        self._refuse_with_dynsec()
        creds = Credentials(username, password or secrets.token_urlsafe(16))
        self._users[username] = creds.password
        if acl is not None:
            self._acl[username] = list(acl)
        self._apply()
        return creds

    def add_users(self, users: Iterable[tuple[str, str, Iterable[AclRule]]]) -> None:
        """Add many ``(username, password, acl)`` users with a single reload."""
        self._refuse_with_dynsec()
        for username, password, acl in users:
            self._users[username] = password
            self._acl[username] = list(acl)
        self._apply()

    def remove_user(self, username: str) -> None:
        """Remove a user; the reloaded broker refuses its new connections."""
        self._refuse_with_dynsec()
        self._users.pop(username, None)
        self._acl.pop(username, None)
        self._apply()

    def _refuse_with_dynsec(self) -> None:
        if self.dynsec:
            raise BrokerError("with dynsec=True, manage users through konak.provisioning.dynsec")

    def credentials(self, username: str) -> Credentials:
        """The credentials of a configured user."""
        return Credentials(username, self._users[username])

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def directory(self) -> Path | None:
        """Where the broker's config, password file and log live while it exists."""
        return self._dir

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the broker's log."""
        if self._dir is None or not (self._dir / "mosquitto.log").exists():
            return "(no log)"
        text = (self._dir / "mosquitto.log").read_text(errors="replace").splitlines()
        return " | ".join(text[-lines:]) or "(empty log)"

    # -- internals -------------------------------------------------------------------
    def _started_line(self) -> bool:
        assert self._dir is not None
        log = self._dir / "mosquitto.log"
        return log.exists() and " running" in log.read_text(errors="replace")

    def _apply(self) -> None:
        if self._dir is not None:
            self._write_files()
        if self.running and self._proc is not None:
            self._proc.send_signal(signal.SIGHUP)

    def _write_files(self) -> None:
        assert self._dir is not None
        d = self._dir
        if self.dynsec:
            self._write_dynsec_files(d)
            return
        passwd = d / "passwd"
        passwd.write_text("".join(f"{u}:{p}\n" for u, p in self._users.items()))
        passwd.chmod(0o600)
        # mosquitto_passwd -U hashes a plain "user:password" file in place.
        subprocess.run(  # noqa: S603 - fixed argv, no shell
            [shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-U", str(passwd)],
            check=True,
            capture_output=True,
        )
        acl_lines = []
        for user in self._users:
            acl_lines.append(f"user {user}")
            rules = self._acl.get(user)
            if rules is None:
                acl_lines.append("topic readwrite #")
            acl_lines.extend(f"topic {r.access} {r.topic}" for r in rules or [])
            acl_lines.append("")
        (d / "acl").write_text("\n".join(acl_lines))
        self._write_conf(d, [f"password_file {passwd}", f"acl_file {d / 'acl'}"])

    def _write_dynsec_files(self, d: Path) -> None:
        state = d / "dynamic-security.json"
        if not state.exists():
            _dynsec_init(state, self.admin)
            # A development broker: let the admin (tests, konak-home) publish anywhere too.
            data = json.loads(state.read_text())
            for role in data["roles"]:
                if role["rolename"] == "admin":
                    role["acls"].append(
                        {"acltype": "publishClientSend", "topic": "#", "allow": True}
                    )
            # The hub's login, hashed by mosquitto_ctrl itself (a throw-away init file) and
            # bound to the hub's client id.
            scratch = d / "hub-login.json"
            _dynsec_init(scratch, self.hub)
            hub = json.loads(scratch.read_text())["clients"][0]
            scratch.unlink()
            hub.update(textName="Konak hub", clientid=self.hub_client_id)
            hub["roles"] = [{"rolename": "konak-hub"}]
            data["clients"].append(hub)
            data["roles"].append({"rolename": "konak-hub", "acls": [dict(a) for a in HUB_ACLS]})
            state.write_text(json.dumps(data, indent=2))
            state.chmod(0o600)
        self._write_conf(d, [f"plugin {_dynsec_plugin()}", f"plugin_opt_config_file {state}"])

    def _write_conf(self, d: Path, auth_lines: list[str]) -> None:
        conf = [
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
            "allow_anonymous false",
            *auth_lines,
            f"max_queued_messages {MAX_QUEUED_MESSAGES}",
            f"max_packet_size {MAX_PACKET_BYTES}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {d}/",
            *(AUTOSAVE_LINES if self.persistence else ()),
            f"log_dest file {d / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            # Low latency over throughput: a voice turn is a few small QoS 1 messages.
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto drops to its own user; its files must be readable by it.
            user = "mosquitto" if _user_exists("mosquitto") else "root"
            conf.insert(0, f"user {user}")
            if user != "root":
                entry = pwd.getpwnam(user)
                for path in (d, *d.iterdir()):
                    # A running broker renames its autosave file (mosquitto.db.new) away.
                    with contextlib.suppress(FileNotFoundError):
                        os.chown(path, entry.pw_uid, entry.pw_gid)
        (d / "mosquitto.conf").write_text("\n".join(conf) + "\n")

    def _launch(self) -> bool:
        assert self._dir is not None
        (self._dir / "mosquitto.log").unlink(missing_ok=True)  # readiness reads a fresh log
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [_mosquitto_binary(), "-c", str(self._dir / "mosquitto.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                logger.warning("mosquitto exited at start: %s", self.log_tail(5))
                self._proc = None
                return False
            # The log line proves it is our broker that listens, not another process (the
            # whole fresh log: clients reconnecting at once log many lines right after it).
            if self._started_line():
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection((self.host, self.port), timeout=0.2),
                ):
                    return True
            # Readiness poll of a child process, not coordination between tests.
            time.sleep(0.01)
        self._terminate()
        raise BrokerError(f"mosquitto did not accept connections within {START_TIMEOUT_SECONDS}s")

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("mosquitto ignored SIGTERM; killing it")
            proc.kill()
            proc.wait()


def _dynsec_init(path: Path, login: Credentials) -> None:
    """``mosquitto_ctrl dynsec init``: a state file whose one client is ``login``."""
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [
            shutil.which("mosquitto_ctrl") or "/usr/bin/mosquitto_ctrl",
            "dynsec",
            "init",
            str(path),
            login.username,
            login.password,
        ],
        check=True,
        capture_output=True,
    )


def _dynsec_plugin() -> str:
    found = sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so"))
    if not found:
        raise BrokerError("mosquitto's dynamic security plugin is not installed")
    return found[0]


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def running_broker(users: Mapping[str, str] | None = None) -> Iterator[Mosquitto]:
    """A started broker for the duration of a ``with`` block."""
    with Mosquitto(users) as broker:
        yield broker
