"""What every provider needs of an HTTP answer: which failures are transient, its JSON if any, its request id."""

from __future__ import annotations

import json
from typing import Any

import httpx

# No answer at all (time-out, refused or dropped connection): the events are kept and retried.
TRANSIENT = (httpx.TimeoutException, httpx.TransportError)


def json_or_none(answer: httpx.Response) -> Any:
    """The answer's JSON value, or None when the body is not JSON (logged by the caller, never raised)."""
    try:
        return answer.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def json_object(answer: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} for anything else: a missing field then reads as missing."""
    data = json_or_none(answer)
    return data if isinstance(data, dict) else {}


def request_id(answer: httpx.Response) -> str:
    """The provider's id for this request, for logs that support can trace."""
    return answer.headers.get("X-Request-Id") or answer.headers.get("X-Amzn-RequestId") or "-"
