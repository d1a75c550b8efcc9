"""The collector's request body and signature: a JSON array, gzipped, HMAC-SHA256 of the exact bytes sent."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
from collections.abc import Generator
from typing import Any

import httpx

from ..http import json_text

MAX_BODY_BYTES = 1_000_000  # the collector answers 413 above 1 MB; keep every body under it


def encode_body(value: Any) -> bytes:
    """Compact JSON, gzipped (level 6: most of the size gain at a fraction of level 9's time)."""
    return gzip.compress(json_text(value).encode(), compresslevel=6)


def sign(body: bytes, secret_key: str) -> str:
    """base64(HMAC-SHA256(secret, body)): the value of the Authorization header."""
    return base64.b64encode(hmac.new(secret_key.encode(), body, hashlib.sha256).digest()).decode()


class Signature(httpx.Auth):
    """The collector's authentication: every request signed over the exact bytes it carries."""

    requires_request_body = True

    def __init__(self, secret_key: str) -> None:
        self._secret_key = secret_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = sign(request.content, self._secret_key)
        yield request


def gzipped_json(method: str, url: str, body: bytes, headers: dict[str, str] | None = None,
                 params: dict[str, Any] | None = None) -> httpx.Request:
    """A request carrying an `encode_body` body (signed when sent, by `Signature`)."""
    return httpx.Request(method, url, content=body, params=params,
                         headers={"Content-Type": "application/json", "Content-Encoding": "gzip", **(headers or {})})
