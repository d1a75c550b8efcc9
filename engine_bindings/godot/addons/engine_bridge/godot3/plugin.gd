tool
extends EditorPlugin
# Godot 3 editor plugin: adds the EngineBridge autoload and the engine_bridge/ Project Settings.
# To use it, plugin.cfg's script line reads script="godot3/plugin.gd".

const Settings = preload("../settings.gd")
const AUTOLOAD = "EngineBridge"


func _enter_tree():
	Settings.register_all()


func enable_plugin():
	var addon_dir = get_script().resource_path.get_base_dir().get_base_dir()
	add_autoload_singleton(AUTOLOAD, addon_dir + "/engine_bridge.gd")


func disable_plugin():
	remove_autoload_singleton(AUTOLOAD)
