"""The collector's request body and signature: a JSON array, gzipped, HMAC-SHA256 of the exact bytes sent."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
from typing import Any

from ..http import json_text

MAX_BODY_BYTES = 1_000_000  # the collector answers 413 above 1 MB; keep every body under it


def encode_body(value: Any) -> bytes:
    """Compact JSON, gzipped (level 6: most of the size gain at a fraction of level 9's time)."""
    return gzip.compress(json_text(value).encode(), compresslevel=6)


def sign(body: bytes, secret_key: str) -> str:
    """base64(HMAC-SHA256(secret, body)): the value of the Authorization header."""
    return base64.b64encode(hmac.new(secret_key.encode(), body, hashlib.sha256).digest()).decode()


def headers(body: bytes, secret_key: str) -> dict[str, str]:
    return {"Authorization": sign(body, secret_key), "Content-Type": "application/json",
            "Content-Encoding": "gzip"}
