# The binding's Project Settings, in one list: the editor plugins register them (with defaults and
# hints) and the runtime reads them, so a name or a default lives in exactly one place.
# `key` is the short name configure() takes; `name` is the Project Settings path.

const ITEMS = [
	{
		"key": "game",
		"name": "engine_bridge/identity/game",
		"type": TYPE_STRING,
		"default": "",
		"doc": "the game's id (1-32 of a-z 0-9 _ -): its daemon's --game and its own endpoints",
	},
	{
		"key": "ingress_endpoint",
		"name": "engine_bridge/connection/ingress_endpoint",
		"type": TYPE_STRING,
		"default": "",
		"doc": "the daemon's ingress (ROUTER) socket, tcp://IP:port; empty: the game's own",
	},
	{
		"key": "configs_endpoint",
		"name": "engine_bridge/connection/configs_endpoint",
		"type": TYPE_STRING,
		"default": "",
		"doc": "the daemon's configs (XPUB) socket, tcp://IP:port; empty: the game's own",
	},
	{
		"key": "queue_size",
		"name": "engine_bridge/queue/max_events",
		"type": TYPE_INT,
		"default": 10000,
		"doc": "events kept while the daemon is away; beyond it the oldest are dropped and counted",
	},
	{
		"key": "game_build",
		"name": "engine_bridge/identity/game_build",
		"type": TYPE_STRING,
		"default": "",
		"doc": "the game's build; empty: application/config/version, else 0.0.0",
	},
	{
		"key": "device_id",
		"name": "engine_bridge/identity/device_id",
		"type": TYPE_STRING,
		"default": "",
		"doc": "empty: a random id made on first run and kept in user://",
	},
	{
		"key": "user_id",
		"name": "engine_bridge/identity/user_id",
		"type": TYPE_STRING,
		"default": "",
		"doc": "empty: the device id",
	},
	{
		"key": "auto_launch",
		"name": "engine_bridge/daemon/auto_launch",
		"type": TYPE_BOOL,
		"default": false,
		"doc": "start the daemon if the first connection attempt fails",
	},
	{
		"key": "daemon_executable",
		"name": "engine_bridge/daemon/executable",
		"type": TYPE_STRING,
		"default": "engine-bridge/engine-bridge",
		"doc": "the bundled daemon auto_launch starts; a relative path is found in daemon_base_dir",
	},
	{
		"key": "daemon_arguments",
		"name": "engine_bridge/daemon/arguments",
		"type": TYPE_ARRAY,
		"default": [],
		"doc": "more arguments after run --ingress I --publish P --parent-pid PID [--game G]",
	},
	{
		"key": "daemon_base_dir",
		"name": "engine_bridge/daemon/base_dir",
		"type": TYPE_STRING,
		"default": "",
		"doc": "where a relative daemon executable is; empty: the game's executable's folder",
	},
	{
		"key": "quit_drain_ms",
		"name": "engine_bridge/behavior/quit_drain_ms",
		"type": TYPE_INT,
		"default": 300,
		"doc": "when the game ends, wait at most this long for what is queued to be acknowledged",
	},
	{
		"key": "warning_interval_ms",
		"name": "engine_bridge/behavior/warning_interval_ms",
		"type": TYPE_INT,
		"default": 10000,
		"doc": "at most one console warning of a kind per this many ms; the ones between are summed up",
	},
]


# Adds every setting to Project Settings with its default, keeping values the developer has set.
# Called by the editor plugins (static, so it also runs from them in the editor).
static func register_all():
	for item in ITEMS:
		var name = item["name"]
		if not ProjectSettings.has_setting(name):
			ProjectSettings.set_setting(name, item["default"])
		ProjectSettings.set_initial_value(name, item["default"])
		ProjectSettings.add_property_info({"name": name, "type": item["type"]})
