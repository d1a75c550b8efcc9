"""The first config source: the `[configs]` table of the daemon's TOML file, published as `config/local`.

Local overrides are for development: edit the file and the running game sees the change within a second
(the file is watched), or at once after SIGHUP.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .config import ConfigError, read_local_configs
from .protocol import LOCAL_CONFIG_TOPIC
from .publisher import Publisher

log = logging.getLogger(__name__)


class LocalConfigs:
    def __init__(self, publisher: Publisher, path: Path | None, initial: dict[str, Any]) -> None:
        self.publisher = publisher
        self.path = path
        self._mtime = self._stat()
        publisher.publish(LOCAL_CONFIG_TOPIC, initial, "local")

    def _stat(self) -> float | None:
        try:
            return self.path.stat().st_mtime if self.path else None
        except OSError:
            return None

    def poll(self) -> None:
        """Reload when the file's modification time changed since the last look."""
        mtime = self._stat()
        if mtime is not None and mtime != self._mtime:
            self.reload()

    def reload(self) -> None:
        """Read the file again and publish its `[configs]`; a broken file keeps the last good values."""
        if self.path is None:
            return
        self._mtime = self._stat()
        try:
            values = read_local_configs(self.path)
        except ConfigError as exc:
            log.error("keeping the previous local configs: %s", exc)
            return
        self.publisher.publish(LOCAL_CONFIG_TOPIC, values, "local")
