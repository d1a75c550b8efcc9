"""The `project.godot` of a throwaway Godot project wired to a daemon: for the Godot tests and benchmark."""

from __future__ import annotations

from pathlib import Path

from tests.harness import Daemon


def write_project_file(project: Path, name: str, daemon: Daemon, extra_settings: str = "") -> None:
    """Main scene, the EngineBridge autoload, and the daemon's endpoints (plus any other addon settings)."""
    (project / "project.godot").write_text(f"""config_version=4

[application]
config/name="{name}"
run/main_scene="res://main.tscn"

[autoload]
EngineBridge="*res://addons/engine_bridge/engine_bridge.gd"

[engine_bridge]
connection/ingress_endpoint="{daemon.ingress}"
connection/configs_endpoint="{daemon.publish}"
{extra_settings}""")
