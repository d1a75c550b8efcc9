@tool
extends EditorPlugin
# Godot 4 editor plugin: adds the EngineBridge autoload and the engine_bridge/ Project Settings.
# Godot 4 finds godot4/plugin.cfg (it looks into addon folders that have no plugin.cfg of their
# own); Godot 3 finds addons/engine_bridge_godot3/plugin.cfg instead.

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
