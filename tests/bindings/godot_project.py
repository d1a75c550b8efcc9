"""The `project.godot` of a throwaway Godot project wired to a daemon: for the Godot tests and benchmark."""

from __future__ import annotations

from pathlib import Path

from tests.harness import Daemon


def write_project_file(project: Path, name: str, daemon: Daemon | None, extra_settings: str = "",
                       main_scene: str = "res://main.tscn") -> None:
    """Main scene, the EngineBridge autoload, and the daemon's endpoints (none: the addon's defaults) plus any
    other addon settings."""
    endpoints = "" if daemon is None else (f'connection/ingress_endpoint="{daemon.ingress}"\n'
                                           f'connection/configs_endpoint="{daemon.publish}"\n')
    (project / "project.godot").write_text(f"""config_version=4

[application]
config/name="{name}"
run/main_scene="{main_scene}"

[autoload]
EngineBridge="*res://addons/engine_bridge/engine_bridge.gd"

[engine_bridge]
{endpoints}{extra_settings}""")
