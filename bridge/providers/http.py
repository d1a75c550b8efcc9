"""What every provider needs of HTTP: JSON bodies from event fields, an answer's JSON if any, its request id."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

def jsonable(value: Any) -> Any:
    """`default=` for json.dumps: event fields may hold msgpack binary, which JSON carries as base64 text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"{type(value).__name__} cannot be sent as JSON")


def json_text(value: Any) -> str:
    """Compact JSON of anything an event holds (binary as base64)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=jsonable)


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
