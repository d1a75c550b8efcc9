"""The daemon's logging: one format, third-party loggers kept quiet, and configured secrets never printed.

httpcore and h11 log requests and raise errors that quote header values; a provider secret must not reach
the log that way (or any other): every record is passed through a filter that masks each secret's text.
"""

from __future__ import annotations

import logging

from .config import Settings

MASK = "***"
QUIET = ("httpcore", "h11", "hpack", "httpx")  # their DEBUG lines carry request details, never wanted
SECRET_WORDS = ("secret", "key", "token", "password")
MIN_SECRET_CHARS = 6  # shorter values would mask ordinary words


def secrets_of(settings: Settings) -> list[str]:
    """The values of every provider setting whose name says it is a secret (api_key, app_secret, ...)."""
    found = {value for table in settings.providers.values() for name, value in table.items()
             if isinstance(value, str) and len(value) >= MIN_SECRET_CHARS
             and any(word in name for word in SECRET_WORDS)}
    return sorted(found, key=len, reverse=True)


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's final text (message, arguments and traceback alike)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        masked, exc_text = text, record.exc_text
        for secret in self.secrets:
            masked = masked.replace(secret, MASK)
            if exc_text:
                exc_text = exc_text.replace(secret, MASK)
        record.msg, record.args, record.exc_text = masked, None, exc_text
        return True


def setup_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact = RedactSecrets(secrets_of(settings))
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
