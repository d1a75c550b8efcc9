"""`engine-bridge validate CONFIG`: every problem of a configuration file, each naming its line and key.

It runs the checks start-up runs, and no others of its own: the TOML syntax, the daemon's tables
(`config.key_problems`), each provider's typed settings (`parse_settings`, as the dispatcher does), the
environment variables that `_env` keys name, then `config.load` for the rest (endpoints, the store URL,
values in range). Unlike start-up it goes on after a problem, so one run shows them all. It also checks what
start-up would only find later: each provider's `endpoint` is an http(s) URL with a host.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .. import config
from ..providers.registry import UnknownProvider, provider_class
from ..providers.settings import SettingsError, parse_settings

PATH = re.compile(r"^(?:configuration file \S+ )?([A-Za-z0-9_.-]+)[:\s]")
PLACEHOLDER = "<unset>"  # stands in for a missing environment variable, so the other checks go on


@dataclass(frozen=True)
class Problem:
    line: int | None
    message: str

    def show(self, path: Path) -> str:
        return f"{path}:{self.line}: {self.message}" if self.line else f"{path}: {self.message}"


def validate(path: Path) -> list[Problem]:
    try:
        text = path.read_text()
    except OSError as exc:
        return [Problem(None, f"cannot be read: {exc.strerror}")]
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        return [Problem(int(line.group(1)) if line else None, f"not valid TOML: {exc}")]
    lines = KeyLines(text)
    messages = config.key_problems(doc)
    providers = doc.get("providers", {})
    if isinstance(providers, dict):
        for name, table in providers.items():
            messages.extend(provider_problems(name, table))
    if not messages:  # the rest of start-up's checks, which stop at the first problem
        try:
            config.load(path)
        except config.ConfigError as exc:
            messages.append(str(exc))
        except (TypeError, ValueError) as exc:  # a value start-up takes as it is (a path, a number)
            messages.append(f"a value cannot be used: {exc}")
    return [Problem(lines.find(message), message) for message in messages]


def provider_problems(name: str, table: Any) -> list[str]:
    """A provider table as the dispatcher reads it: its type, its environment variables, its settings."""
    if not isinstance(table, dict):
        return [f"providers.{name}: must be a table ([providers.{name}])"]
    found = []
    spec: dict[str, Any] = {}  # as start-up reads it without --sandbox: the table alone
    for key, value in table.items():
        if key.endswith("_env") and isinstance(value, str):
            if value not in os.environ:
                found.append(f"providers.{name}.{key}: environment variable {value} is not set")
            spec[key[:-len("_env")]] = os.environ.get(value, PLACEHOLDER)
        else:
            spec[key] = value
    if not spec.pop("enabled", True):
        return found
    try:
        kind = provider_class(str(spec.get("type", name)))
        parse_settings(name, kind.Settings, spec)
    except UnknownProvider as exc:
        found.append(f"providers.{name}.type: {exc}")
    except SettingsError as exc:
        found.append(str(exc))
    endpoint = spec.get("endpoint")
    if isinstance(endpoint, str):
        try:
            url = httpx.URL(endpoint)
            valid = url.scheme in ("http", "https") and bool(url.host)
        except httpx.InvalidURL:
            valid = False
        if not valid:
            found.append(f"providers.{name}.endpoint: {endpoint!r} is not an http:// or https:// URL with a host")
    return found


class KeyLines:
    """Where each `table.key` is written in a TOML text (its first line), read line by line: simple tables,
    keys of `key = value` lines; a message names its path first (`providers.ga.secret_kye: ...`)."""

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        table = ""
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            header = re.fullmatch(r"\[\s*([^\[\]]+?)\s*\]", line)
            if header:
                table = ".".join(part.strip().strip('"') for part in header.group(1).split("."))
                self.lines.setdefault(table, number)
                continue
            key = re.match(r"([A-Za-z0-9_-]+)\s*=", line)
            if key:
                self.lines.setdefault(f"{table}.{key.group(1)}" if table else key.group(1), number)

    def find(self, message: str) -> int | None:
        """The line of the longest path the message starts with (its key, else its table)."""
        match = PATH.match(message)
        if not match:
            return None
        path = match.group(1).rstrip(".")
        while path:
            for written in (path, f"{path}_env"):  # a secret named by its variable
                if written in self.lines:
                    return self.lines[written]
            tail = [n for key, n in self.lines.items() if key.endswith("." + path)]  # `ingress`: daemon.ingress
            if tail:
                return tail[0]
            path = path.rpartition(".")[0]
        return None


def main(path: Path) -> int:
    problems = validate(path)
    for problem in problems:
        print(problem.show(path))
    if problems:
        print(f"{path}: {len(problems)} problem(s)")
        return 1
    print(f"{path}: ok")
    return 0
