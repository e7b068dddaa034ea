"""Real Debian 12 hosts for the fleet test: a root per host, its sshd in its own network
namespace, joined by veth pairs to a bridge in the controller's namespace.

Everything lives under ``/tmp/konak-fleet-*`` and in namespaces named ``kf<id>-*``; the
host's own network is never touched (the bridge and every address are inside namespaces).
Mounts (``/proc``, ``/dev``) are made inside each sshd's private mount namespace, so they
vanish with its processes and never appear in the host's mount table; each host has its
own PID namespace, so nothing in a root can signal a process outside it. :meth:`Fleet.close`
kills every process in the namespaces, deletes them, and removes the roots only when no
mount is left under them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PREFIX: Final = "konak-fleet-"
SSH_START_TIMEOUT_SECONDS: Final = 30.0
KILL_TIMEOUT_SECONDS: Final = 10.0


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, raising with its output when it fails."""
    proc = subprocess.run(argv, text=True, capture_output=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class Host:
    """One Debian root with its network namespace and address."""

    name: str
    root: Path
    netns: str
    address: str
    sshd: subprocess.Popen[bytes] | None = None


class Fleet:
    """Hosts on a private bridge; ``controller_ns`` is where Ansible runs."""

    def __init__(self, names: list[str], base_tarball: Path) -> None:
        self.id = secrets.token_hex(2)
        self.work = Path(tempfile.mkdtemp(prefix=PREFIX))
        self.controller_ns = f"kf{self.id}-c"
        subnet = 16 + secrets.randbelow(200)
        self.controller_address = f"10.231.{subnet}.1"
        self.hosts = [
            Host(n, self.work / n, f"kf{self.id}-{i}", f"10.231.{subnet}.{11 + i}")
            for i, n in enumerate(names)
        ]
        self.base_tarball = base_tarball
        self.key = self.work / "id_ed25519"
        self._namespaces: list[str] = []

    # -- set up -------------------------------------------------------------------
    def start(self) -> None:
        """Unpack the roots, build the network, start every sshd."""
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)])
        self._netns_add(self.controller_ns)
        ns = ["ip", "-n", self.controller_ns]
        run([*ns, "link", "set", "lo", "up"])
        run([*ns, "link", "add", "kfbr", "type", "bridge"])
        run([*ns, "link", "set", "kfbr", "up"])
        run([*ns, "addr", "add", f"{self.controller_address}/24", "dev", "kfbr"])
        for i, host in enumerate(self.hosts):
            self._unpack(host)
            self._netns_add(host.netns)
            # Both ends are created inside the namespaces: no interface ever exists on the host.
            run(
                [
                    "ip", "link", "add", f"kfv{i}", "netns", self.controller_ns, "type", "veth",
                    "peer", "name", "eth0", "netns", host.netns,
                ]
            )  # fmt: skip
            run([*ns, "link", "set", f"kfv{i}", "master", "kfbr", "up"])
            hn = ["ip", "-n", host.netns]
            run([*hn, "link", "set", "lo", "up"])
            run([*hn, "addr", "add", f"{host.address}/24", "dev", "eth0"])
            run([*hn, "link", "set", "eth0", "up"])
            self._start_sshd(host)
        for host in self.hosts:
            self._wait_ssh(host)

    def _netns_add(self, name: str) -> None:
        run(["ip", "netns", "add", name])
        self._namespaces.append(name)

    def _unpack(self, host: Host) -> None:
        host.root.mkdir()
        run(["tar", "-C", str(host.root), "-xf", str(self.base_tarball)])
        r = host.root
        (r / "etc/hostname").write_text(host.name + "\n")
        hosts = "127.0.0.1 localhost\n" + "".join(f"{h.address} {h.name}\n" for h in self.hosts)
        (r / "etc/hosts").write_text(hosts)
        ssh = r / "root/.ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copy(self.key.with_suffix(".pub"), ssh / "authorized_keys")
        (ssh / "authorized_keys").chmod(0o600)
        (r / "etc/ssh/sshd_config.d/konak-fleet.conf").write_text(
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n"
            f"ListenAddress {host.address}\n"
        )
        run(["chroot", str(r), "ssh-keygen", "-A"])
        (r / "run/sshd").mkdir(parents=True, exist_ok=True)

    def _start_sshd(self, host: Host) -> None:
        # Private mount and PID namespaces: /proc and /dev are mounted for this sshd and what
        # it starts and disappear with them, and a pid file in the root can only name a
        # process of this host (sshd is its PID 1: when it ends, all of them end).
        script = (
            f"mount --make-rprivate / && mount -t proc proc {host.root}/proc && "
            f"mount --bind /dev {host.root}/dev && "
            f"exec chroot {host.root} /usr/sbin/sshd -D -e"
        )
        with (self.work / f"{host.name}-sshd.log").open("wb") as log:
            host.sshd = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    host.netns,
                    "unshare",
                    "--mount",
                    "--pid",
                    "--fork",
                    "--kill-child",
                    "sh",
                    "-c",
                    script,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ssh(self, host: Host) -> None:
        deadline = time.monotonic() + SSH_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            proc = subprocess.run(
                self.ssh_argv(host, "true"), capture_output=True, text=True, check=False
            )
            if proc.returncode == 0:
                return
            # Readiness poll of a child process, not coordination between tests.
            time.sleep(0.5)
        log = (self.work / f"{host.name}-sshd.log").read_text(errors="replace")
        raise RuntimeError(f"sshd on {host.name} did not answer: {log[-2000:]}")

    # -- use --------------------------------------------------------------------------
    def ssh_options(self) -> list[str]:
        """What Ansible's ssh and ours share."""
        return [
            "-o", f"UserKnownHostsFile={self.work / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5",
        ]  # fmt: skip

    def in_controller(self, argv: list[str]) -> list[str]:
        """``argv`` run in the controller's network namespace."""
        return ["ip", "netns", "exec", self.controller_ns, *argv]

    def ssh_argv(self, host: Host, command: str) -> list[str]:
        """Run ``command`` on ``host`` over SSH."""
        return self.in_controller(
            ["ssh", "-i", str(self.key), *self.ssh_options(), f"root@{host.address}", command]
        )

    def ssh(self, host: Host, command: str) -> str:
        """``command``'s output on ``host``; raises when it fails."""
        return run(self.ssh_argv(host, command)).stdout

    # -- tear down ----------------------------------------------------------------------
    def close(self) -> None:
        """Kill everything in the namespaces, delete them, remove the roots."""
        for host in self.hosts:
            if host.sshd is not None and host.sshd.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(host.sshd.pid, 15)
        for name in reversed(self._namespaces):
            self._kill_netns_processes(name)
            subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)
        self._namespaces.clear()
        for host in self.hosts:
            if host.sshd is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    host.sshd.wait(timeout=KILL_TIMEOUT_SECONDS)
        if _mounts_under(self.work):
            raise RuntimeError(f"mounts left under {self.work}; not removing it")
        run(["rm", "-rf", "--one-file-system", str(self.work)])

    @staticmethod
    def _kill_netns_processes(name: str) -> None:
        deadline = time.monotonic() + KILL_TIMEOUT_SECONDS
        signal = "TERM"
        while True:
            pids = subprocess.run(
                ["ip", "netns", "pids", name], capture_output=True, text=True, check=False
            ).stdout.split()
            if not pids:
                return
            if time.monotonic() > deadline:
                signal = "KILL"
            subprocess.run(["kill", f"-{signal}", *pids], check=False, capture_output=True)
            # Waiting for processes to exit after a signal.
            time.sleep(0.2)


def _mounts_under(path: Path) -> list[str]:
    targets = run(["findmnt", "-rn", "-o", "TARGET"]).stdout.splitlines()
    prefix = str(path.resolve())
    return [t for t in targets if t == prefix or t.startswith(prefix + "/")]
