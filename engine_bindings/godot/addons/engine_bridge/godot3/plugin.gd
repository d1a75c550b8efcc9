tool
extends EditorPlugin
# Godot 3 editor plugin: adds the EngineBridge autoload and the engine_bridge/ Project Settings.
# Godot 3 reads only addons/<folder>/plugin.cfg, so it finds this through
# addons/engine_bridge_godot3/plugin.cfg; this folder has none (Godot 4's is godot4/plugin.cfg),
# and an update never means editing a file.

const Settings = preload("../settings.gd")
const AUTOLOAD = "EngineBridge"


func _enter_tree():
	Settings.register_all()


func enable_plugin():
	# Loaded as addons/engine_bridge_godot3/../engine_bridge/godot3/plugin.gd.
	var addon_dir = get_script().resource_path.simplify_path().get_base_dir().get_base_dir()
	add_autoload_singleton(AUTOLOAD, addon_dir + "/engine_bridge.gd")


func disable_plugin():
	remove_autoload_singleton(AUTOLOAD)
