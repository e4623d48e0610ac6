"""The twin's home directory: where its kubeconfig, CA, endpoints, pid, log and snapshot live.

Layout (``TwinHome``): ``kubeconfig`` (context ``rhaii-twin``), ``ca.crt``/``ca.key``, ``token``
(0600, the bearer token of the Kubernetes API), ``endpoints.json`` (URLs and settings, no secret),
``twin.pid``, ``twin.log`` and the optional ``snapshot.json``.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOME_ENV = "RHAII_TWIN_HOME"
CONTEXT_NAME = "rhaii-twin"


def default_home() -> Path:
    """``$RHAII_TWIN_HOME`` or ``~/.cache/rhaii-nb/twin``."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "rhaii-nb" / "twin"


def write_file(path: Path, text: str, private: bool = False) -> None:
    """Write ``text`` atomically; ``private`` files are created owner-only (0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    if private:
        os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie we could reap)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours still answers kill(0): reap it if it is ours and finished
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True
    return True


@dataclass(frozen=True)
class TwinHome:
    """Paths inside one twin home directory."""

    root: Path

    @classmethod
    def at(cls, root: Path | str | None = None) -> TwinHome:
        """The home at ``root`` (default: :func:`default_home`), created if missing."""
        path = Path(root).expanduser() if root else default_home()
        path.mkdir(parents=True, exist_ok=True)
        return cls(path.resolve())

    @property
    def kubeconfig(self) -> Path:
        """The kubeconfig with the ``rhaii-twin`` context."""
        return self.root / "kubeconfig"

    @property
    def ca_crt(self) -> Path:
        """The twin CA certificate."""
        return self.root / "ca.crt"

    @property
    def token_file(self) -> Path:
        """The Kubernetes API bearer token (0600)."""
        return self.root / "token"

    @property
    def endpoints_file(self) -> Path:
        """``endpoints.json``: server URLs and the settings the twin runs with."""
        return self.root / "endpoints.json"

    @property
    def pid_file(self) -> Path:
        """``twin.pid``: the daemon's process id while it runs."""
        return self.root / "twin.pid"

    @property
    def log_file(self) -> Path:
        """``twin.log``: the daemon's log."""
        return self.root / "twin.log"

    @property
    def snapshot_file(self) -> Path:
        """``snapshot.json``: the store saved at shutdown, loaded at start."""
        return self.root / "snapshot.json"

    def token(self) -> str:
        """The bearer token, generated (random, 0600) on first use."""
        if self.token_file.exists():
            value = self.token_file.read_text().strip()
            if value:
                return value
        value = secrets.token_urlsafe(32)
        write_file(self.token_file, value + "\n", private=True)
        return value

    def write_kubeconfig(self, server_url: str, token: str) -> None:
        """Write the kubeconfig: one cluster (CA path + URL), one token user, context ``rhaii-twin``."""
        import yaml

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CONTEXT_NAME,
                    "cluster": {"server": server_url, "certificate-authority": str(self.ca_crt)},
                }
            ],
            "users": [{"name": CONTEXT_NAME, "user": {"token": token}}],
            "contexts": [
                {
                    "name": CONTEXT_NAME,
                    "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": "default"},
                }
            ],
            "current-context": CONTEXT_NAME,
            "preferences": {},
        }
        write_file(self.kubeconfig, yaml.safe_dump(config, sort_keys=False), private=True)

    def write_endpoints(self, endpoints: dict[str, Any]) -> None:
        """Write ``endpoints.json`` (must hold no secret)."""
        write_file(self.endpoints_file, json.dumps(endpoints, indent=2, sort_keys=True) + "\n")

    def read_endpoints(self) -> dict[str, Any] | None:
        """The endpoints of the last started twin, or None."""
        try:
            return json.loads(self.endpoints_file.read_text())
        except (OSError, ValueError):
            return None

    def write_pid(self, pid: int) -> None:
        """Record the daemon's pid."""
        write_file(self.pid_file, f"{pid}\n")

    def read_pid(self) -> int | None:
        """The recorded pid, or None when absent/garbled."""
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def live_pid(self) -> int | None:
        """The recorded pid if that process is alive, else None."""
        pid = self.read_pid()
        return pid if pid is not None and pid_alive(pid) else None

    def remove_pid(self, pid: int | None = None) -> None:
        """Remove the pid file (only if it still names ``pid``, when given)."""
        if pid is not None and self.read_pid() not in (pid, None):
            return
        self.pid_file.unlink(missing_ok=True)
