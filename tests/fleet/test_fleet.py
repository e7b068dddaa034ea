"""`make test-fleet`: site.yml and rolling_update.yml against real Debian 12 hosts over SSH.

Two debootstrapped roots, each with its sshd in its own network namespace: ``kf1`` runs the
broker, the hub and a device, ``kf2`` a device. Not part of `make test` (it needs root and
takes minutes); run with ``KONAK_FLEET=1``. Figures are printed at the end (run with -s).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.hosts import Fleet, Host, run

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "ansible"
CACHE = REPO / ".fleet-cache"
BIN = Path(sys.executable).parent
TENANT = "acme"
LICENCES = ["CC-BY-NC-SA-4.0"]

pytestmark = [
    pytest.mark.skipif(os.environ.get("KONAK_FLEET") != "1", reason="make test-fleet"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, chroot)"),
    pytest.mark.skipif(shutil.which("debootstrap") is None, reason="apt-get install debootstrap"),
    pytest.mark.timeout(3600),
]

FIGURES: dict[str, object] = {}


# -- the artefacts the hosts get -------------------------------------------------------
def build_wheel(out: Path, epoch: int) -> Path:
    """The release wheel (a different ``epoch`` gives a different file: a new release).

    Built from a copy of the tree, so setuptools' build/ and egg-info never land in it."""
    src = out.with_name(out.name + "-src")
    skip = shutil.ignore_patterns(
        ".git", ".fleet-cache", ".models", ".venv", "node_modules", "build", "dist",
        "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", ".ansible",
    )  # fmt: skip
    shutil.copytree(REPO, src, ignore=skip, symlinks=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(out), "."],
        cwd=src,
        env=env,
    )
    (wheel,) = out.glob("konak-*.whl")
    return wheel


def wheelhouse(wheel: Path) -> Path:
    """Every dependency as wheels in a tarball (the namespaces have no route to PyPI), cached."""
    house = CACHE / "wheelhouse"
    with zipfile.ZipFile(wheel) as whl:
        metadata = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line for line in whl.read(metadata).decode().splitlines() if line.startswith("Requires")
        ]
    # made again when the release's requirements change
    stamp = house / f".complete-{hashlib.sha256(repr(requires).encode()).hexdigest()[:12]}"
    if not stamp.exists():
        run(
            [
                str(BIN / "pip"), "wheel", "--quiet", "--wheel-dir", str(house),
                f"{wheel}[device,audio,systemd,hub]",
                # Debian 12's Python is 3.11.2: redis needs this below 3.11.3, this one is newer.
                "async-timeout>=4.0.3",
            ]
        )  # fmt: skip
        stamp.touch()
    for own in house.glob("konak-*.whl"):
        own.unlink()
    archive = CACHE / "wheelhouse.tar"
    if not archive.exists() or archive.stat().st_mtime < stamp.stat().st_mtime:
        run(["tar", "-C", str(house), "-cf", str(archive), "--exclude", ".complete*", "."])
    return archive


def models_archive(model_set: str = "default") -> Path:
    """A model set from the work tree's store as a tarball, cached."""
    archive = CACHE / f"models-{model_set}.tar"
    if archive.exists():
        return archive
    from konak.edge_models.manifest import load_packaged

    store = Path(os.environ.get("KONAK_MODELS_DIR", REPO / ".models"))
    ids = [m.id for m in load_packaged().resolve([model_set])]
    wanted: set[int] = set()
    members: list[Path] = []
    for model_id in ids:
        for path in sorted((store / "models" / model_id).rglob("*")):
            members.append(path)
            if path.is_file() and not path.is_symlink():
                wanted.add(path.stat().st_ino)
    blobs = [p for p in (store / "blobs").rglob("*") if p.is_file() and p.stat().st_ino in wanted]
    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        for path in [*blobs, *members]:
            tar.add(path, arcname=str(path.relative_to(store)), recursive=False)
    partial.rename(archive)
    return archive


# -- running Ansible ----------------------------------------------------------------------
def write_inventory(fleet: Fleet, wheel: Path) -> Path:
    """One hub (broker + hub + a device) and a second device."""
    hub, dev = fleet.hosts
    inventory = {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_python_interpreter": "/usr/bin/python3",
                "konak_tenant": TENANT,
                "konak_hub_address": hub.address,
                "konak_service_manager": "direct",
                "konak_apt_update_cache": False,
                "konak_release_wheel": str(wheel),
                "konak_release_wheelhouse": str(wheelhouse(wheel)),
                "konak_device_models_archive": str(models_archive()),
                "konak_hub_models_archive": str(models_archive("hub")),
                "konak_device_accept_licenses": LICENCES,
                "konak_device_audio_source": "none",
                "konak_device_audio_sink": "none",
            },
            "children": {
                "konak_broker": {"hosts": {hub.name: {"ansible_host": hub.address}}},
                "konak_hub": {"hosts": {hub.name: {"ansible_host": hub.address}}},
                "konak_devices": {
                    "hosts": {
                        h.name: {
                            "ansible_host": h.address,
                            "konak_device_name": f"Pi {h.name}",
                            "konak_device_area": area,
                        }
                        for h, area in ((hub, "kitchen"), (dev, "hall"))
                    }
                },
            },
        }
    }
    path = fleet.work / "inventory.json"
    path.write_text(json.dumps(inventory, indent=2))
    return path


def playbook(
    fleet: Fleet, inventory: Path, name: str, *extra: str, succeed: bool = True
) -> tuple[str, dict[str, int]]:
    """Run a playbook in the controller's namespace; its output and changed count per host."""
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_HOME": str(fleet.work / "ansible-home"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(fleet.work / "cp"),
        "ANSIBLE_PRIVATE_KEY_FILE": str(fleet.key),
        "ANSIBLE_SSH_ARGS": " ".join(fleet.ssh_options()),
        # The roots have no /dev/pts (only /dev is bound in): no terminal for modules.
        "ANSIBLE_SSH_USETTY": "False",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }
    argv = fleet.in_controller(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(ANSIBLE / name), *extra]
    )
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{time.strftime('%H%M%S')}-{name}.log"
    with log.open("w") as out:
        proc = subprocess.run(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, check=False, cwd=ANSIBLE
        )
    output = log.read_text()
    if (proc.returncode == 0) != succeed:
        raise AssertionError(f"{name} exited with {proc.returncode}, {log}:\n{output[-6000:]}")
    return output, recap(output)


def recap(output: str) -> dict[str, int]:
    """``changed=`` per host from the PLAY RECAP."""
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.MULTILINE)
    }


# -- checks ---------------------------------------------------------------------------------
def mqtt(fleet: Fleet, hub: Host, login: dict[str, str], topic: str, ca: Path) -> str:
    """Subscribe as ``login`` over TLS for a moment; mosquitto_sub's output."""
    argv = fleet.in_controller(
        [
            "mosquitto_sub", "-V", "mqttv5", "-h", hub.address, "-p", "8883", "--cafile", str(ca),
            "-u", login["username"], "-P", login["password"], "-i", login["client_id"],
            "-t", topic, "-W", "2", "-C", "1",
        ]
    )  # fmt: skip
    proc = subprocess.run(argv, text=True, capture_output=True, check=False)
    return f"rc={proc.returncode} {proc.stdout} {proc.stderr}"


def wait_for_logins(hub: Host, client_ids: list[str], timeout_seconds: float = 90.0) -> bool:
    """Whether the broker logged a connection of every client id within the time."""
    log = hub.root / "var/log/konak/mosquitto.log"
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if all(f"as {c} " in text for c in client_ids):
            return True
        # Polling another process's log file; the daemons load their models first.
        time.sleep(1)
    return False


HUB_DEVICES = """
import json, ssl, urllib.request
ctx = ssl.create_default_context(cafile="/etc/konak/pki/ca.crt")
def call(path, body=None, token=None):
    data = json.dumps(body).encode() if body else None
    req = urllib.request.Request("https://127.0.0.1:8380" + path, data=data,
                                 headers={"Content-Type": "application/json"})
    if token: req.add_header("Authorization", "Bearer " + token)
    return json.load(urllib.request.urlopen(req, context=ctx))
pw = open("/etc/konak/secrets/hub-admin.password").read().strip()
token = call("/api/auth/login", {"email": "admin@konak.invalid", "password": pw})["access_token"]
print(json.dumps(call("/api/tenants/TENANT/devices", token=token)))
"""


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    started = time.monotonic()
    run([str(REPO / "tests/fleet/build_base.sh"), str(CACHE)])
    FIGURES["base image (s)"] = round(time.monotonic() - started)
    hosts = Fleet(["kf1", "kf2"], CACHE / "bookworm-base.tar")
    try:
        hosts.start()
        yield hosts
    finally:
        hosts.close()


def test_site_then_rolling_update_on_two_debian_hosts(fleet: Fleet, tmp_path: Path) -> None:
    t0 = time.monotonic()
    wheel = build_wheel(tmp_path / "r1", epoch=1_700_000_000)
    inventory = write_inventory(fleet, wheel)
    t1 = time.monotonic()
    _, first = playbook(fleet, inventory, "site.yml")
    t2 = time.monotonic()
    FIGURES["first site.yml (s)"] = round(t2 - t1)
    FIGURES["first run changed"] = first
    hub = fleet.hosts[0]

    # The broker: each device's own login over TLS; another device's topics refused.
    ca = hub.root / "etc/konak/pki/ca.crt"
    logins = {
        h.name: json.loads((h.root / "var/lib/konak/daemon/credentials.json").read_text())
        for h in fleet.hosts
    }
    login = {k: str(logins["kf2"][k]) for k in ("username", "password", "client_id")}
    own = mqtt(fleet, hub, login, f"konak/v1/{TENANT}/kf2/cmd", ca)
    assert "denied" not in own, own
    assert "rror" not in own, own
    other = mqtt(fleet, hub, login, f"konak/v1/{TENANT}/kf1/cmd", ca)
    assert "denied" in other, other
    wrong = mqtt(fleet, hub, {**login, "password": "not-the-password"}, "konak/#", ca)
    assert "rc=0" not in wrong, wrong
    # Both daemons run and hold their own TLS sessions (the broker logs each login).
    connected = wait_for_logins(hub, [str(v["client_id"]) for v in logins.values()])
    assert connected, (hub.root / "var/log/konak/mosquitto.log").read_text()[-3000:]

    # The devices: the unit installed, the config parses with its models.
    for host in fleet.hosts:
        assert (host.root / "etc/systemd/system/konak-daemon.service").is_file()
        out = fleet.ssh(
            host,
            "runuser -u konak -- /opt/konak/.venv/bin/konak daemon check-config "
            "--config /etc/konak/daemon.toml",
        )
        assert ": ok (device" in out, out
        groups = fleet.ssh(host, "id -nG konak").split()
        assert "audio" in groups, groups

    # The hub lists both devices as enrolled.
    listed = json.loads(
        fleet.ssh(hub, f"python3 -c {shlex.quote(HUB_DEVICES.replace('TENANT', TENANT))}")
    )
    enrolled = {d["device"]: d for d in listed["devices"]}
    assert set(enrolled) == {"kf1", "kf2"}, listed
    assert not any(d["revoked"] for d in enrolled.values()), listed

    # A second run changes nothing.
    _, second = playbook(fleet, inventory, "site.yml")
    t3 = time.monotonic()
    FIGURES["second site.yml (s)"] = round(t3 - t2)
    FIGURES["second run changed"] = second
    assert second == {"kf1": 0, "kf2": 0}, second

    # The rolling update puts a new release on every device, one at a time.
    before = {h.name: os.readlink(h.root / "opt/konak/.venv") for h in fleet.hosts}
    wheel2 = build_wheel(tmp_path / "r2", epoch=1_700_000_100)
    playbook(fleet, inventory, "rolling_update.yml", "-e", f"konak_release_wheel={wheel2}")
    t4 = time.monotonic()
    FIGURES["rolling_update.yml (s)"] = round(t4 - t3)
    after = {h.name: os.readlink(h.root / "opt/konak/.venv") for h in fleet.hosts}
    for name in after:
        assert after[name] != before[name], (before, after)
        assert Path(after[name]).parent.name.endswith(_sha12(wheel2)), after

    # A release that fails its check on the first host: that host goes back, the rest keep
    # what they run, the play fails.
    bad = broken_wheel(wheel2, tmp_path / "bad")
    out, _ = playbook(
        fleet, inventory, "rolling_update.yml", "-e", f"konak_release_wheel={bad}", succeed=False
    )
    t5 = time.monotonic()
    FIGURES["failed rolling_update.yml (s)"] = round(t5 - t4)
    assert "rolled back" in out or "Roll this host back" in out, out[-3000:]
    final = {h.name: os.readlink(h.root / "opt/konak/.venv") for h in fleet.hosts}
    assert final == after, (after, final)
    fleet.ssh(fleet.hosts[0], "/usr/local/sbin/konak-service status konak-daemon")
    FIGURES["hosts"] = len(fleet.hosts)
    FIGURES["total (s)"] = round(time.monotonic() - t0)
    print("\nfleet figures:", json.dumps(FIGURES, indent=1))


def broken_wheel(wheel: Path, out: Path) -> Path:
    """A copy of ``wheel`` whose ``konak daemon`` cannot start (a release that fails)."""
    out.mkdir()
    broken = out / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "konak/daemon/cli.py":
                data = b'raise SystemExit("konak: a broken release")\n' + data
            dst.writestr(item, data)
    return broken


def _sha12(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
