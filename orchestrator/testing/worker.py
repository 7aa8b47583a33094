"""Running a real ``orchestrator worker`` process from a test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from orchestrator.config import Settings
from orchestrator.testing.kafka import wait_until

__all__ = ["WorkerProcess", "settings_env"]


def settings_env(settings: Settings) -> dict[str, str]:
    """The ORCH_* environment that reproduces ``settings`` in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(exclude={"topics"}).items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is not None:
            env["ORCH_" + name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    for name, value in settings.topics.model_dump().items():
        env["ORCH_TOPIC_" + name.upper()] = value
    return env


class WorkerProcess:
    """One ``orchestrator worker`` child process with its settings, log file and web port."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.cwd = cwd
        """The folder the worker starts in (None: this process's): where a relative data_dir lies."""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self) -> WorkerProcess:
        env = {**os.environ, **settings_env(self.settings), **self.extra_env, "PYTHONUNBUFFERED": "1"}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        return self

    def request(self, path: str, token: str | None = None) -> urllib.request.Request:
        """A GET of ``path`` with this worker's API token (or ``token``) as a bearer token."""
        configured = self.settings.api_token.get_secret_value() if self.settings.api_token else ""
        secret = token or configured.split(",")[0].strip()
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return urllib.request.Request(self.url + path, headers=headers)

    def get_json(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.request(path), timeout=2) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            status, _ = self.get_json("/readyz")
        except (OSError, ValueError):
            return False
        return status == 200

    def wait_ready(self, timeout: float = 60.0) -> WorkerProcess:
        try:
            wait_until(self._ready, timeout=timeout, interval=0.2, what="the worker to be ready")
        except TimeoutError:
            raise TimeoutError(f"worker not ready within {timeout:.0f}s:\n{self.log_tail()}") from None
        return self

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
