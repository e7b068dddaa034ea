"""The daemon uses the broker login that ``konak daemon enroll`` stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from konak.daemon.errors import ConfigError
from konak.daemon.settings import parse
from konak.devtools.mosquitto import free_port
from konak.provisioning.enroll import Enrolment, write_credentials
from tests.conftest import konak, one_error_line


def settings_with(credentials: Path, tmp_path: Path, device: str = "kitchen-pi"):  # type: ignore[no-untyped-def]
    raw = {
        "device": {"tenant": "acme", "device": device},
        "hub": {"credentials_file": str(credentials), "host": "ignored.invalid"},
    }
    return parse(raw, base_dir=tmp_path, default_models_dir=tmp_path)


def stored(tmp_path: Path) -> Path:
    path = tmp_path / "credentials.json"
    write_credentials(
        path, Enrolment("acme", "kitchen-pi", "broker.lan", 8883, "acme.kitchen-pi", "s3cret")
    )
    return path


def test_the_enrolled_login_replaces_the_configured_broker_login(tmp_path: Path) -> None:
    hub = settings_with(stored(tmp_path), tmp_path).hub
    assert (hub.host, hub.port, hub.username, hub.password) == (
        "broker.lan",
        8883,
        "acme.kitchen-pi",
        "s3cret",
    )
    assert "s3cret" not in repr(hub)


def test_a_login_issued_to_another_device_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="issued to acme/kitchen-pi, but device is acme/hall"):
        settings_with(stored(tmp_path), tmp_path, device="hall")


@pytest.mark.parametrize("content", [None, "not json", '{"tenant": "acme"}'])
def test_a_missing_or_broken_credentials_file_is_one_clear_error(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "credentials.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=r"hub.credentials_file: .*credentials.json"):
        settings_with(path, tmp_path)


@pytest.mark.parametrize(
    ("hub", "code"),
    [("ftp://hub.example", "bad_hub_url"), ("not a url", "bad_hub_url"), (None, "unreachable")],
)
def test_enroll_reports_a_bad_or_unreachable_hub_in_one_line(
    tmp_path: Path, hub: str | None, code: str
) -> None:
    url = hub or f"http://127.0.0.1:{free_port()}"
    creds = tmp_path / "c.json"
    line = one_error_line(
        konak("daemon", "enroll", "--hub", url, "--token", "t", "--name", "Kitchen",
              "--credentials", str(creds))
    )  # fmt: skip
    assert line.endswith(f"[{code}]")
    assert not creds.exists()
