extends Node
# The engine-bridge addon in a small Godot 4 scene: start the daemon (`engine-bridge run`), run this
# scene, press the buttons. Every call returns at once; replies and configs arrive as signals. On
# quit the addon itself ends the session and flushes (setting engine_bridge/behavior/quit_drain_ms).

# A stand-in for the base64 receipt the store SDK hands the game after a payment; with the daemon's
# staq sandbox, register it first (PUT /_sandbox/receipts) to see it verified as valid.
const DEMO_RECEIPT := "ZGVtbyByZWNlaXB0IGZvciAxMDAgZ2Vtcw=="

var _level := 0
var _gems := 0

@onready var _status: Label = $Status


func _ready() -> void:
	EngineBridge.connection_changed.connect(_on_connection_changed)
	EngineBridge.config_changed.connect(_on_config_changed)
	EngineBridge.session_started.connect(_on_session_started)
	# Verdicts of purchases no callback took, e.g. made by an earlier run that quit before its verdict.
	EngineBridge.purchase_verified.connect(_on_purchase_verdict)
	$Play.pressed.connect(_on_play_pressed)
	$Buy.pressed.connect(_on_buy_pressed)
	EngineBridge.start_session()


func _on_connection_changed(connected: bool) -> void:
	_show("daemon %s" % ("connected" if connected else "away: events wait in the queue"))


# Remote configs: config/local (the daemon's [configs] table) wins over GameRamp and GameAnalytics.
func _on_config_changed(key: String, value: Variant) -> void:
	var difficulty = EngineBridge.get_config("difficulty", "normal")
	_show("config %s = %s (difficulty is now %s)" % [key, value, difficulty])


func _on_session_started(session: Dictionary) -> void:
	_show("session %d started" % session["session_num"])


func _on_play_pressed() -> void:
	_level += 1
	var level := "level%02d" % _level
	EngineBridge.track_progression("Start", "world01", level)
	EngineBridge.track_design("ui:button:play", _level)
	EngineBridge.track_resource("Source", "gold", 50, "reward", "level_complete")
	var score := randi_range(100, 1000)
	EngineBridge.track_progression("Complete", "world01", level, "", score, 1)
	# A wrong argument is refused at once, with the reason, and nothing is sent.
	if EngineBridge.track_business("usd", 99, "gems", "pack") == "":
		_show(EngineBridge.get_last_error())
	_show("played %s: %d events waiting" % [level, EngineBridge.pending_count()])


# The result comes once, however late (the daemon says "pending" while staq is unreachable).
func _on_buy_pressed() -> void:
	var on_verdict := _on_purchase_verdict
	var id: String = EngineBridge.verify_purchase(
		"apple", DEMO_RECEIPT, on_verdict, 0.99, "", {"sku": "gems_100"}
	)
	_show("purchase %s sent for verification" % id)


func _on_purchase_verdict(purchase_id: String, result: Dictionary) -> void:
	if result["error"] != "":
		_show("purchase %s not verified: %s" % [purchase_id, result["message"]])
	elif result["is_valid"] and not result["is_duplicate"]:
		_gems += 100 if result["metadata"].get("sku", "") == "gems_100" else 0
		_show("purchase %s granted: %d gems" % [purchase_id, _gems])
	else:
		_show("purchase %s refused: %s" % [purchase_id, result["reason"]])


func _show(text: String) -> void:
	_status.text = text + "\n" + _status.text
