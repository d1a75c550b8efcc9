"""What the store hands out: one small dataclass per kind of row, read by field name, never by position."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class OpenSession:
    """A session not yet ended: the ingress resumes it after a restart."""

    session_id: str
    device_id: str
    user_id: str
    session_num: int
    started_at: int
    user_ip: str | None


@dataclass(slots=True)
class SavedConfig:
    """A config topic's latest publication, kept so that versions go on from there after a restart."""

    topic: str
    version: int
    source: str
    payload: bytes  # the msgpack publication map
    updated_at: int
