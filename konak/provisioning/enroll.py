"""The device side of enrolment: redeem a claim token at the hub and store the broker login
it returns in a file only the daemon's user can read (mode 0600)."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from konak.errors import KonakError

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS: Final = 30.0


class EnrollError(KonakError):
    """Enrolment failed; the message says why (the hub's reason when it gave one)."""

    code = "enroll_failed"


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What the hub issued to this device."""

    tenant: str
    device: str
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    # The only MQTT client id the broker accepts this login with (older files: the username).
    client_id: str = ""

    def __post_init__(self) -> None:
        if not self.client_id:
            object.__setattr__(self, "client_id", self.username)


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def enroll(
    hub_url: str,
    token: str,
    name: str,
    area: str | None,
    credentials_path: Path,
    *,
    device: str | None = None,
    allow_plain_http: bool = False,
) -> Enrolment:
    """Enrol at ``hub_url`` with a claim token; write the login to ``credentials_path``.

    ``device`` is the device id (by default the hub derives it from ``name``); a claim token
    minted for one device id is redeemed only with that id.

    The answer carries the device's broker password, so the hub must be reached over HTTPS;
    plain HTTP only to this machine (loopback) or with ``allow_plain_http``."""
    parts = urlsplit(hub_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EnrollError(f"--hub must be an http(s) URL, not {hub_url!r}", code="bad_hub_url")
    if parts.scheme == "http" and not (allow_plain_http or _loopback(parts.hostname)):
        raise EnrollError(
            f"refusing to enrol over plain HTTP ({hub_url}): the answer carries the broker "
            "password; use the hub's https:// URL",
            code="insecure_hub_url",
        )
    fields = {"token": token, "name": name, "area": area}
    if device is not None:  # else the hub derives the id from the name
        fields["device"] = device
    body = json.dumps(fields).encode()
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        hub_url.rstrip("/") + "/api/enroll",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            answer: Any = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise EnrollError(f"the hub refused the enrolment: {_reason(exc)}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise EnrollError(f"cannot reach the hub at {hub_url}: {exc}", code="unreachable") from exc
    except ValueError as exc:
        raise EnrollError("the hub's answer is not JSON", code="bad_answer") from exc
    try:
        broker = answer["broker"]
        enrolment = Enrolment(
            tenant=str(answer["tenant"]),
            device=str(answer["device"]),
            host=str(broker["host"]),
            port=int(broker["port"]),
            username=str(broker["username"]),
            password=str(broker["password"]),
            client_id=str(broker.get("client_id") or ""),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EnrollError("the hub's answer lacks the broker login", code="bad_answer") from exc
    write_credentials(credentials_path, enrolment)
    logger.info("enrolled as %s/%s", enrolment.tenant, enrolment.device)
    return enrolment


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        error = json.loads(exc.read())["error"]
        return f"{error['message']} [{error['code']}]"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {exc.code}"


def write_credentials(path: Path, enrolment: Enrolment) -> None:
    """Write the login as JSON, created with mode 0600 and renamed into place atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a leftover file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w") as fh:
        json.dump(
            {
                "tenant": enrolment.tenant,
                "device": enrolment.device,
                "host": enrolment.host,
                "port": enrolment.port,
                "username": enrolment.username,
                "password": enrolment.password,
                "client_id": enrolment.client_id,
            },
            fh,
        )
    os.replace(tmp, path)


def read_credentials(path: Path) -> Enrolment:
    """Read a credentials file written by :func:`enroll`."""
    try:
        data = json.loads(path.read_text())
        return Enrolment(
            tenant=data["tenant"],
            device=data["device"],
            host=data["host"],
            port=int(data["port"]),
            username=data["username"],
            password=data["password"],
            client_id=data.get("client_id") or "",
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EnrollError(f"{path}: not a readable credentials file", code="bad_file") from exc
