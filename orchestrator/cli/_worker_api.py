"""Asking a running worker's web server (the CLI side of :mod:`orchestrator.runtime.web`)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson

from orchestrator.exceptions import OrchestratorError

__all__ = ["WorkerApiError", "get_json"]


class WorkerApiError(OrchestratorError):
    """A worker could not be asked: unreachable, wrong token, or an error answer."""


def get_json(url: str, path: str, token: str | None, timeout: float = 5.0) -> dict[str, Any] | None:
    """The worker's JSON answer to ``GET url+path`` (with the API token); a ``{"_missing": True, ...}``
    body for a 404 (this worker does not hold it)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(f"{url.rstrip('/')}{path}", headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as r:
            body: dict[str, Any] = orjson.loads(r.read())
            return body
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            answer: dict[str, Any] = orjson.loads(exc.read() or b"{}")
            return {"_missing": True, **answer}
        if exc.code == 401:
            hint = "set ORCH_API_TOKEN (api_token) to the worker's token" if not token else "wrong token"
            raise WorkerApiError(f"{url}: HTTP 401 unauthorized: {hint}") from None
        raise WorkerApiError(f"{url}: HTTP {exc.code}") from None
    except orjson.JSONDecodeError:
        raise WorkerApiError(f"{url}{path}: the answer is not JSON (is this a worker's address?)") from None
    except OSError as exc:
        raise WorkerApiError(f"{url}: cannot reach the worker: {exc}") from None
