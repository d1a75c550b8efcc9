@tool
extends EditorPlugin
# Godot 4 editor plugin: adds the EngineBridge autoload and the engine_bridge/ Project Settings.
# (plugin.cfg names this file; Godot 3 projects point it at godot3/plugin.gd instead.)

const Settings = preload("../settings.gd")
const AUTOLOAD = "EngineBridge"


func _enter_tree():
	Settings.register_all()
	for item in Settings.ITEMS:
		ProjectSettings.set_as_basic(item["name"], true)


func _enable_plugin():
	var addon_dir = get_script().resource_path.get_base_dir().get_base_dir()
	add_autoload_singleton(AUTOLOAD, addon_dir + "/engine_bridge.gd")


func _disable_plugin():
	remove_autoload_singleton(AUTOLOAD)
