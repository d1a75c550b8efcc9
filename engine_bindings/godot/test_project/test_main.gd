extends "res://harness.gd"
# The Godot binding's headless test runs (Godot 3), driven by tests/bindings/test_godot.py. Each run
# is one phase (EB_TEST_PHASE): "main" checks the codec and builders against the shared conformance
# vectors, then the EngineBridge autoload against a real daemon and a staq sandbox; "restart" is the
# game started again after quitting with a purchase pending; "refusals" runs against a daemon whose
# GameAnalytics provider refuses events; "absent" points a bridge at nothing, then at another
# program; "quit_<way>" queues events and ends the game that way. Prints "EB_MARK <step>" when the
# wrapper must act, "EB_FACT <name> <json>" for what the wrapper checks in the store afterwards, and
# last "N passed, N failed" (harness.gd).

const ConformanceChecks = preload("res://conformance_checks.gd")
# The issue's load: a steady 1,000 events/s through a daemon outage (the wrapper's OUTAGE_S).
const STREAM_RATE = 1000
# A daemon back from an outage is found this fast (the reconnect backoff is capped at 1 s).
const RECONNECT_LAG_MS = 1500
const OVERFLOW_QUEUE = 10
const OVERFLOW_EVENTS = 25
const QUIT_EVENTS = 603
# Provider refusals after the first, inside the console's interval (the wrapper sets it).
const MORE_REFUSALS = 8

var adapter
var codec
var receipts = {}  # name -> a base64 receipt the wrapper registered with the staq sandbox
var verdicts = {}  # purchase id -> the results its verify_purchase callback received


# Stands in for a shop screen closed before its purchase's verdict came.
class ClosedShop:
	extends Reference

	func on_verdict(_purchase_id, _result):
		print("FAIL: a freed object's callback was called")


func _ready():
	start_watchdog()
	var phase = OS.get_environment("EB_TEST_PHASE")
	if phase != "absent":
		record_signals(EngineBridge)
	adapter = load(ADDON + "/godot3/adapter.gd").new()
	codec = load(ADDON + "/internal/msgpack.gd").new(adapter)
	if phase == "main" or phase == "restart":
		receipts = parse_json(OS.get_environment("EB_TEST_RECEIPTS"))
	if phase == "main":
		_run()
	elif phase == "restart":
		_run_restart()
	elif phase == "refusals":
		_run_refusals()
	elif phase == "absent":
		_run_absent()
	elif phase.begins_with("quit_"):
		_run_quit(phase.substr(5, phase.length() - 5))
	else:
		check(false, "unknown phase %s" % phase)
		_finish()


# verify_purchase's callback in these tests: records every call.
func _on_verdict(purchase_id, result):
	if not verdicts.has(purchase_id):
		verdicts[purchase_id] = []
	verdicts[purchase_id].append(result)


func has_verdict(purchase_id):
	return verdicts.has(purchase_id)


func times(purchase_id):
	return verdicts[purchase_id].size() if verdicts.has(purchase_id) else 0


func acked_more_than(n):
	return EngineBridge.get_stats()["acked"] > n


func reply_came():
	return EngineBridge.pending_count() == 0


func is_online():
	return EngineBridge.is_online()


func _run():
	ConformanceChecks.new(self, adapter, codec).run()
	_test_settings_and_plugin()
	_test_game_endpoints()
	yield(_test_connect_and_configs(), "completed")
	yield(_test_every_helper(), "completed")
	yield(_test_sessions_and_flush(), "completed")
	yield(_test_purchases(), "completed")
	_test_bad_arguments()
	yield(_test_config_updates(), "completed")
	yield(_test_heartbeat(), "completed")
	yield(_test_outage_mid_stream(), "completed")
	yield(_test_overflow_counts_only_unsent(), "completed")
	yield(_test_auto_launch(), "completed")
	_test_no_verdict_twice()
	yield(_test_quit_with_a_pending_purchase(), "completed")
	_finish()


# --- settings and the Godot 3 editor plugin -------------------------------------------------------


func _test_settings_and_plugin():
	# project.godot sets daemon/auto_launch to the string "yes": reported at start, default used.
	var startup_error = EngineBridge.get_last_error()
	check(
		startup_error.find("auto_launch") >= 0,
		"a mistyped Project Setting is reported: %s" % [startup_error]
	)
	check(EngineBridge.get_stats()["daemon_pid"] == 0, "and its default (no auto_launch) applies")
	var settings = load(ADDON + "/settings.gd")
	settings.register_all()
	for item in settings.ITEMS:
		check(ProjectSettings.has_setting(item["name"]), "setting %s registered" % item["name"])
	check(
		ProjectSettings.get_setting("engine_bridge/queue/max_events") == 10000,
		"an unset setting gets its default"
	)
	# The wrapper wrote a copy of godot3/plugin.gd extending Node (EditorPlugin exists only in the
	# editor build): loading it proves the Godot 3 plugin script compiles.
	var plugin = load(ADDON + "/godot3/plugin_compile_check.gd")
	check(plugin != null and plugin.can_instance(), "godot3/plugin.gd compiles in Godot 3")
	# Godot 3's editor reads addons/<name>/plugin.cfg and loads res://addons/<name>/<script>, as
	# ProjectSettings.localize_path makes it.
	var cfg = ConfigFile.new()
	var cfg_dir = "res://addons/engine_bridge_godot3"
	check(cfg.load(cfg_dir + "/plugin.cfg") == OK, "Godot 3's plugin.cfg is shipped")
	var script_path = ProjectSettings.localize_path(
		cfg_dir + "/" + str(cfg.get_value("plugin", "script", ""))
	)
	check(
		script_path == ADDON + "/godot3/plugin.gd",
		"Godot 3's plugin.cfg names godot3/plugin.gd: %s" % [script_path]
	)


# A game's own port pair, as protocol.md section 1 computes it (the wrapper compares more ids with
# the daemon's bridge/game.py).
func _test_game_endpoints():
	var games = load(ADDON + "/internal/game_endpoints.gd")
	var ports = {}
	for game in ["space-duel", "a", "moon-golf", "z9_-x", "0123456789abcdefghijklmnopqrstuv"]:
		check(games.valid(game), "%s is a game id" % game)
		ports[game] = games.defaults(game, adapter)
	check(ports["space-duel"][0] == "tcp://127.0.0.1:42812", "space-duel: %s" % str(ports))
	for bad in ["", "Space", "-a", "a b", "0123456789abcdefghijklmnopqrstuvw", "é"]:
		check(not games.valid(bad), "%s is no game id" % bad)
	check(not EngineBridge.configure({"game": "Bad Id"}), "configure refuses a bad game id")
	fact("game_ports", ports)


# --- against the daemon ---------------------------------------------------------------------------


func _test_connect_and_configs():
	fact("device_id", EngineBridge.get_stats()["device_id"])
	var ok = yield(wait("is_online", [], 15.0), "completed")
	check(ok, "connected and welcomed: %s" % str(EngineBridge.get_stats()))
	check(
		got["connection_changed"].size() == 1 and got["connection_changed"][0][0] == true,
		"connection_changed(true) once"
	)
	check(
		same(got["connection_state_changed"], [["connected", ""]]),
		"connection_state_changed(connected): %s" % str(got["connection_state_changed"])
	)
	var snap = yield(wait("has_signal_count", ["configs_updated", 1], 10.0), "completed")
	check(snap, "configs_updated arrived")
	if snap:
		check(
			same(got["configs_updated"][0][0], {"difficulty": "hard", "max_lives": 5}),
			"configs snapshot: %s" % str(got["configs_updated"][0][0])
		)
	check(EngineBridge.get_config("difficulty") == "hard", "get_config difficulty")
	check(same(EngineBridge.get_config("max_lives"), 5), "get_config max_lives is the int 5")
	check(EngineBridge.get_config("absent", 42) == 42, "get_config default")
	check(
		got["config_changed"].size() == 2,
		"config_changed once per key: %s" % str(got["config_changed"])
	)
	var changed = {}
	for c in got["config_changed"]:
		changed[c[0]] = c[1]
	check(same(changed, {"difficulty": "hard", "max_lives": 5}), "config_changed values")


# Every helper once, with the values the wrapper expects to find in the store.
func _test_every_helper():
	var before = EngineBridge.get_stats()
	var custom = {
		"step": 3,
		"ratio": -0.25,
		"big": 5000000000,
		"neg": -70000,
		"flag": true,
		"nothing": null,
		"text": "héllo 🎮",
		"blob": PoolByteArray([0, 1, 254, 255]),
		"list": [1, "two", [3.5]],
		"custom_fields": {"nested": {"deeper": [1, 2]}},
	}
	var ids = {
		"design": EngineBridge.track_design("ui:click:play", 1.5),
		"design_int": EngineBridge.track_design("level:boss:defeated", 3, {"custom_01": "hard"}),
		"design_bare": EngineBridge.track_design("menu"),
		"business":
		EngineBridge.track_business(
			"USD", 99, "gems", "pack_small", "shop", {"receipt_info": {"store": "apple"}}
		),
		"progression": EngineBridge.track_progression("Complete", "world01", "level01", "", 100, 2),
		"progression_short": EngineBridge.track_progression("Start", "world02"),
		"resource": EngineBridge.track_resource("Sink", "gold", 25.5, "boost", "speed"),
		"error": EngineBridge.track_error("warning", "Texture missing: ünïcödé 日本"),
		"ads": EngineBridge.track_ads("show", "rewarded_video", "admob", "end_of_level", 15000, ""),
		"ads_failed":
		EngineBridge.track_ads(
			"failed_show", "app_open", "applovin_max", "launch", null, "unable_to_precache"
		),
		# The deprecated ad_fb_error in extra: sent as ad_fail_show_reason.
		"ads_fb_error":
		EngineBridge.track_ads(
			"failed_show",
			"video",
			"admob",
			"end_of_level",
			0,
			"",
			{"ad_fb_error": "no_fill", "custom_01": "vip"}
		),
		"impression":
		EngineBridge.track_impression(
			"max",
			"12.4.1",
			{
				"revenue": 0.0123,
				"currency": "USD",
				"precision": "exact",
				"ad_unit": {"id": "u-1", "format": "REWARDED"},
				"deepest": {"k": {"k": 1}},
			}
		),
		"custom": EngineBridge.track("tutorial_skipped", custom),
	}
	for key in ids:
		check(typeof(ids[key]) == TYPE_STRING and ids[key] != "", "%s returns an event id" % key)
	fact("helper_ids", ids)
	var ok = yield(wait("drained", [EngineBridge], 15.0), "completed")
	var after = EngineBridge.get_stats()
	check(ok, "helper events acknowledged: %s" % str(after))
	check(after["acked"] - before["acked"] == ids.size(), "one ack per helper event")
	check(after["stored"] - before["stored"] == ids.size(), "every helper event stored")
	check(
		after["rejected"] == 0 and got["event_rejected"].size() == 0,
		"no event rejected: %s" % str(got["event_rejected"])
	)
	# A paused game still delivers (and still answers the daemon's PINGs).
	get_tree().paused = true
	var paused_id = EngineBridge.track_design("pause:menu")
	ok = yield(wait("drained", [EngineBridge], 10.0), "completed")
	get_tree().paused = false
	check(ok and paused_id != "", "events go out while the game is paused")


func _test_sessions_and_flush():
	EngineBridge.start_session()
	var inside = EngineBridge.track_design("session:inside")
	EngineBridge.end_session()
	var ok = yield(wait("has_signal_count", ["session_ended", 1], 10.0), "completed")
	check(ok and got["session_started"].size() == 1, "session_started then session_ended")
	if ok and got["session_started"].size() == 1:
		var started = got["session_started"][0][0]
		var ended = got["session_ended"][0][0]
		check(
			typeof(started["session_id"]) == TYPE_STRING and started["session_id"].length() == 36,
			"session_id is a UUID: %s" % str(started)
		)
		check(ended["session_id"] == started["session_id"], "the same session ended")
		check(typeof(ended["ended_at"]) == TYPE_INT, "ended_at set")
		check(EngineBridge.get_stats()["session_id"] == "", "no open session after end_session")
		fact("session", {"id": started["session_id"], "event": inside})
	EngineBridge.end_session()
	ok = yield(wait("has_signal_count", ["request_failed", 1], 10.0), "completed")
	check(
		(
			ok
			and got["request_failed"][0][0] == "session_end"
			and got["request_failed"][0][1] == "no_session"
		),
		"a second end_session fails with no_session: %s" % str(got["request_failed"])
	)
	# flush's reply comes from another thread of the daemon, after the acks of what follows it.
	var acked = EngineBridge.get_stats()["acked"]
	EngineBridge.flush()
	EngineBridge.track_design("after:flush")
	ok = yield(wait("has_signal_count", ["flushed", 1], 10.0), "completed")
	check(ok and typeof(got["flushed"][0][0]) == TYPE_INT, "flushed(queued) arrived")
	ok = yield(wait("acked_more_than", [acked], 10.0), "completed")
	check(ok, "the event after the flush was acknowledged")


# The verdict on one purchase, checked: its callback called once with this result.
func check_verdict(purchase_id, is_valid, is_duplicate, what):
	var ok = yield(wait("has_verdict", [purchase_id], 10.0), "completed")
	check(ok, "%s: the callback was called" % what)
	if not ok:
		return
	var r = verdicts[purchase_id][0]
	check(times(purchase_id) == 1, "%s: called once" % what)
	check(
		r["is_valid"] == is_valid and r["is_duplicate"] == is_duplicate,
		"%s: is_valid %s, is_duplicate %s: %s" % [what, is_valid, is_duplicate, str(r)]
	)
	check(
		r["error"] == "" and r["message"] == "" and r["store"] == "apple" and r["reason"] != "",
		"%s: a verdict, not an error: %s" % [what, str(r)]
	)


# A purchase whose callback's object is freed before the verdict. Not a coroutine: a yielding
# function keeps its temporaries (the shop) alive until it ends.
func buy_and_close_the_shop(receipt):
	var shop = ClosedShop.new()
	return EngineBridge.verify_purchase("apple", receipt, funcref(shop, "on_verdict"))


func _test_purchases():
	var on_verdict = funcref(self, "_on_verdict")
	var signals = got["purchase_verified"].size()
	var ids = {}
	ids["valid"] = EngineBridge.verify_purchase(
		"apple", receipts["valid"], on_verdict, 0.99, "", {"sku": "gems_100"}
	)
	check(ids["valid"] != "" and verdicts.size() == 0, "verify_purchase returns an id, at once")
	yield(check_verdict(ids["valid"], true, false, "a valid receipt"), "completed")
	if has_verdict(ids["valid"]):
		check(
			same(verdicts[ids["valid"]][0]["metadata"], {"sku": "gems_100"}),
			"the result has the metadata"
		)
	ids["duplicate"] = EngineBridge.verify_purchase("apple", receipts["valid"], on_verdict, 0.99)
	yield(check_verdict(ids["duplicate"], true, true, "the same receipt again"), "completed")
	ids["invalid"] = EngineBridge.verify_purchase("apple", receipts["invalid"], on_verdict)
	yield(check_verdict(ids["invalid"], false, false, "an invalid receipt"), "completed")
	# Without a callback, or with one whose object is gone, the verdict goes to purchase_verified.
	ids["plain"] = EngineBridge.verify_purchase("apple", receipts["plain"])
	ids["closed"] = buy_and_close_the_shop(receipts["closed"])
	var ok = yield(wait("has_signal_count", ["purchase_verified", signals + 2], 10.0), "completed")
	var reported = {}
	for i in range(signals, got["purchase_verified"].size()):
		reported[got["purchase_verified"][i][0]] = got["purchase_verified"][i][1]
	check(ok and reported.size() == 2, "purchase_verified for both: %s" % str(reported))
	for name in ["plain", "closed"]:
		check(
			reported.has(ids[name]) and reported[ids[name]]["is_valid"] == true,
			"purchase_verified(%s, valid): %s" % [name, str(reported)]
		)
	ids["last"] = EngineBridge.verify_purchase("apple", receipts["last"], on_verdict)
	yield(check_verdict(ids["last"], true, false, "one more purchase"), "completed")
	# staq down: the reply says pending after 5 s, and the verdict comes on the device's topic when
	# staq is back.
	yield(mark("staq_down"), "completed")
	ids["late"] = EngineBridge.verify_purchase("apple", receipts["late"], on_verdict, 4.99)
	var acked = EngineBridge.get_stats()["acked"]
	EngineBridge.track_design("shop:waiting")
	ok = yield(wait("acked_more_than", [acked], 4.0), "completed")
	check(ok and not reply_came(), "events after a purchase do not wait for its reply")
	ok = yield(wait("reply_came", [], 10.0), "completed")
	check(ok and times(ids["late"]) == 0, "a pending reply calls nothing: %s" % str(verdicts))
	check(EngineBridge.get_stats()["purchases_awaiting"] == 1, "one purchase awaits its verdict")
	yield(mark("staq_up"), "completed")
	yield(check_verdict(ids["late"], true, false, "a verdict after a pending reply"), "completed")
	check(EngineBridge.get_stats()["purchases_awaiting"] == 0, "no purchase awaits a verdict")
	# The publication that brought that verdict repeats every earlier one: none was told again.
	for name in ids:
		if name != "plain" and name != "closed":
			check(times(ids[name]) == 1, "%s: still one callback" % name)
	check(got["purchase_verified"].size() == signals + 2, "purchase_verified told nothing again")
	fact("purchases", ids)


# Across the daemon's restart (its topic sent again to the reconnected SUB) and the other bridges
# sharing this device id: still one result per purchase.
func _test_no_verdict_twice():
	var ids = []
	for purchase_id in verdicts:
		ids.append(purchase_id)
		check(
			times(purchase_id) == 1,
			"one callback for %s: %s" % [purchase_id, str(verdicts[purchase_id])]
		)
	var told = {}
	for s in got["purchase_verified"]:
		check(not told.has(s[0]) and not verdicts.has(s[0]), "%s told once, in one place" % s[0])
		told[s[0]] = true
	check(ids.size() >= 6 and told.size() == 2, "every purchase counted: %s %s" % [ids, told])


# The game quits with a purchase the daemon has but staq has not verified, and one the daemon never
# got: the second phase (_run_restart) gets both verdicts.
func _test_quit_with_a_pending_purchase():
	var on_verdict = funcref(self, "_on_verdict")
	yield(mark("staq_down"), "completed")
	var orphan = EngineBridge.verify_purchase(
		"apple", receipts["orphan"], on_verdict, 1.99, "", {"sku": "orphan"}
	)
	var ok = yield(wait("reply_came", [], 10.0), "completed")
	check(ok and times(orphan) == 0, "the purchase is pending as the game quits")
	check(
		EngineBridge.configure({"ingress_endpoint": OS.get_environment("EB_TEST_DEAD_ENDPOINT")}),
		"the daemon out of reach"
	)
	var unsent = EngineBridge.verify_purchase(
		"apple", receipts["unsent"], on_verdict, 2.99, "", {"sku": "unsent"}
	)
	check(
		unsent != "" and EngineBridge.pending_count() == 1 and not EngineBridge.is_online(),
		"a purchase waits unsent as the game quits: %s" % str(EngineBridge.get_stats())
	)
	check(EngineBridge.get_stats()["purchases_awaiting"] == 2, "two purchases await their verdict")
	fact("orphan", orphan)
	fact("unsent", unsent)


# Phase two: the same install started again after test_quit_with_a_pending_purchase, with staq back
# (the daemon has verified the pending purchase meanwhile; the unsent one goes out now).
func _run_restart():
	var left = {
		OS.get_environment("EB_TEST_ORPHAN"): "orphan",
		OS.get_environment("EB_TEST_UNSENT"): "unsent"
	}
	check(
		EngineBridge.get_stats()["purchases_awaiting"] == 2,
		"two purchases taken up from the first run"
	)
	var ok = yield(wait("has_signal_count", ["purchase_verified", 2], 20.0), "completed")
	check(
		ok and EngineBridge.is_online(),
		"two verdicts came after the restart: %s" % [str(got["purchase_verified"])]
	)
	for s in got["purchase_verified"]:
		var name = left.get(s[0], "")
		check(name != "", "%s is a purchase the first run left without a verdict" % s[0])
		check(
			s[1]["is_valid"] == true and s[1]["error"] == "" and s[1]["store"] == "apple",
			"its verdict: %s" % str(s[1])
		)
		check(same(s[1]["metadata"], {"sku": name}), "with its metadata: %s" % str(s[1]))
		left.erase(s[0])
	# A purchase made now while staq is down gets its verdict later on the device's topic, which
	# repeats every verdict the first run had: none of those may be told again.
	yield(mark("staq_down"), "completed")
	var fresh = EngineBridge.verify_purchase(
		"apple", receipts["fresh"], funcref(self, "_on_verdict")
	)
	ok = yield(wait("reply_came", [], 10.0), "completed")
	check(ok and times(fresh) == 0, "a pending reply calls nothing")
	yield(mark("staq_up"), "completed")
	yield(check_verdict(fresh, true, false, "a purchase after the restart"), "completed")
	check(
		got["purchase_verified"].size() == 2,
		"purchases the first run handled are not told again: %s" % [str(got["purchase_verified"])]
	)
	check(EngineBridge.get_stats()["purchases_awaiting"] == 0, "nothing awaits a verdict")
	fact("fresh", fresh)
	_finish()


# Each bad call returns "" at once, names the argument, queues nothing and crashes nothing. The
# rules are the Unity and C++ bindings' too.
func _test_bad_arguments():
	var deep = {"a": {"b": {"c": {"d": {"e": 1}}}}}
	var many = {}
	for i in range(70):
		many["k%d" % i] = i
	var calls = [
		["track_design", [123], "event_id"],
		["track_design", [null], "event_id"],
		["track_design", ["a:b:c:d:e:f"], "event_id"],
		["track_design", ["ui::x"], "every part"],
		["track_design", ["ui:" + "x".repeat(65)], "every part"],
		["track_design", ["ui:x", "1.5"], "value"],
		["track_design", ["ui:x", NAN], "finite"],
		["track_design", ["ui:x", INF], "finite"],
		["track_design", ["ui:x", 1, "not a map"], "Dictionary"],
		["track_design", ["ui:x", 1, {"event_id": "clash"}], "event_id"],
		["track_design", ["ui:x", 1, {"custom_01": 5}], "custom_01"],
		["track_design", ["ui:x", 1, {"custom_fields": [1]}], "custom_fields"],
		["track_design", ["ui:x", 1, {7: "int key"}], "field names"],
		["track_design", ["ui:x", 1, {"pos": Vector2(1, 2)}], "pos"],
		["track_design", ["ui:x", 1, {"deep": deep}], "nested"],
		["track_design", ["ui:x", 1, many], "at most"],
		["track_design", ["ui:x", 1, {"long": "x".repeat(8193)}], "long"],
		["track_business", ["usd", 99, "gems", "pack"], "currency"],
		["track_business", ["USD", 0.99, "gems", "pack"], "amount"],
		["track_business", ["USD", -1, "gems", "pack"], "amount"],
		["track_business", ["USD", 99, "gems:x", "pack"], "item_type"],
		["track_business", ["USD", 99, "gems", ""], "item_id"],
		["track_progression", ["Begin", "world01"], "status"],
		["track_progression", ["Start", ""], "progression_01"],
		["track_progression", ["Start", "w", "", "phase"], "progression_03"],
		["track_progression", ["Start", "w", "l", "", "high"], "score"],
		["track_progression", ["Fail", "w", "l", "", 5, 0], "attempt_num"],
		["track_resource", ["Gain", "gold", 5, "a", "b"], "flow"],
		["track_resource", ["Source", "gold", "five", "a", "b"], "amount"],
		["track_resource", ["Sink", "gold", -5, "a", "b"], "amount"],
		["track_resource", ["Source", "gold", 0, "a", "b"], "amount"],
		["track_resource", ["Source", "gold", 0.0, "a", "b"], "amount"],
		["track_error", ["fatal", "boom"], "severity"],
		["track_error", ["error", 42], "message"],
		["track_ads", ["", "video", "admob", "end"], "action"],
		["track_ads", ["watched", "video", "admob", "end"], "action"],
		["track_ads", ["show", "popup", "admob", "end"], "ad_type"],
		["track_ads", ["show", "video", "", "end"], "sdk_name"],
		["track_ads", ["show", "video", "admob", "end", 1.5], "duration_ms"],
		["track_ads", ["show", "video", "admob", "end", -1], "duration_ms"],
		["track_ads", ["failed_show", "video", "admob", "end", null, "timeout"], "fail_show_reason"],
		["track_ads", ["failed_show", "video", "admob", "end", null, 3], "fail_show_reason"],
		["track_ads", ["failed_show", "video", "a", "e", null, "", {"ad_fb_error": "x"}], "ad_fb_error"],
		[
			"track_ads",
			["failed_show", "video", "a", "e", null, "offline", {"ad_fb_error": "offline"}],
			"fail_show_reason alone"
		],
		[
			"track_ads",
			["failed_show", "video", "a", "e", null, "offline", {"ad_fail_show_reason": "offline"}],
			"ad_fail_show_reason"
		],
		["track_impression", ["", "1.0", {"revenue": 0.01}], "ad_network_name"],
		["track_impression", [null, "1.0", {"revenue": 0.01}], "ad_network_name"],
		["track_impression", ["max", "v".repeat(65), {"revenue": 0.01}], "ad_network_version"],
		["track_impression", ["max", "1.0", null], "impression_data"],
		["track_impression", ["max", "1.0", "{}"], "impression_data"],
		["track_impression", ["max", "1.0", {"revenue": NAN}], "impression_data.revenue"],
		["track_impression", ["max", "1.0", {"a": {"k": {"k": {"k": 1}}}}], "nested"],
		["track_impression", ["max", "1.0", {}, {"impression_data": 1}], "impression_data"],
		["track", ["", {}], "name"],
		["track", ["x".repeat(65), {}], "name"],
		["track", ["ok", {"name": "clash"}], "name"],
		["verify_purchase", ["steam", "cmVjZWlwdA=="], "store"],
		["verify_purchase", ["googleplay", "cmVjZWlwdA==", null, 0.5], "signature"],
		["verify_purchase", ["googleplay", "cmVjZWlwdA==", null, 0.5, "sig"], "signature"],
		["verify_purchase", ["apple", ""], "receipt"],
		["verify_purchase", ["apple", "not base64!"], "receipt"],
		["verify_purchase", ["apple", "cmVjZWlwdA="], "base64"],
		["verify_purchase", ["apple", "cmVjZWlwdA==", 0.99], "FuncRef"],
		["verify_purchase", ["apple", "cmVjZWlwdA==", "_on_verdict"], "callback"],
		["verify_purchase", ["apple", "cmVjZWlwdA==", null, -1.0], "price_usd"],
		["verify_purchase", ["apple", "cmVjZWlwdA==", null, NAN], "price_usd"],
		["verify_purchase", ["apple", "cmVjZWlwdA==", null, 1.0, "", {"k": Vector2()}], "metadata"],
	]
	var before = EngineBridge.pending_count()
	for c in calls:
		var result = EngineBridge.callv(c[0], c[1])
		var message = EngineBridge.get_last_error()
		check(
			result == "" and message.find(c[0]) >= 0 and message.find(c[2]) >= 0,
			"%s%s refused naming %s: %s" % [c[0], str(c[1]).substr(0, 60), c[2], message]
		)
	check(EngineBridge.pending_count() == before, "refused calls queue nothing")
	check(EngineBridge.configure({"queue_sizes": 5}) == false, "configure: unknown key refused")
	check(EngineBridge.configure({"queue_size": "5"}) == false, "configure: wrong type refused")
	check(
		EngineBridge.configure({"ingress_endpoint": "ipc:///tmp/x"}) == false,
		"configure: ipc endpoint refused"
	)
	check(EngineBridge.get_last_error().find("tcp://") >= 0, "the endpoint error says tcp://")
	check(
		EngineBridge.configure({"ingress_endpoint": "tcp://example.com:5555"}) == false,
		"configure: host names refused (resolving would block)"
	)
	check(EngineBridge.is_online(), "still online after refused settings")


func config_is(key, value):
	for c in got["config_changed"]:
		if c[0] == key and same(c[1], value):
			return true
	return false


func _test_config_updates():
	var updates_before = got["configs_updated"].size()
	mark_nowait("config_update")
	var ok = yield(wait("config_is", ["difficulty", "nightmare"], 15.0), "completed")
	check(ok, "config_changed(difficulty, nightmare) after the file changed")
	check(
		config_is("max_lives", null),
		"config_changed(max_lives, null) for a removed key: %s" % [str(got["config_changed"])]
	)
	check(config_is("speed", 1.25), "config_changed(speed, 1.25) for a new key")
	check(got["configs_updated"].size() > updates_before, "configs_updated after the change")
	check(
		same(EngineBridge.get_configs(), {"difficulty": "nightmare", "speed": 1.25}),
		"get_configs: %s" % str(EngineBridge.get_configs())
	)
	check(EngineBridge.get_config("max_lives", -1) == -1, "a removed key reads as the default")


# The ingress sends no PING of its own (protocol.md section 1): the addon PINGs a quiet daemon
# and its PONG keeps the connection, so a frozen daemon is noticed and a live one kept.
func _test_heartbeat():
	var ok = yield(wait("stat_at_least", [EngineBridge, "pongs_received", 1], 12.0), "completed")
	var stats = EngineBridge.get_stats()
	check(ok, "the daemon answered the addon's ZMTP PING: %s" % str(stats))
	check(stats["connects"] == 1, "still the first connection after PING/PONG")


# STREAM_RATE events/s with the default queue; a second in, the wrapper kills the daemon (SIGKILL),
# waits OUTAGE_S and starts it again. The bridge must find it within RECONNECT_LAG_MS, drop
# nothing, and every event must be stored exactly once.
func _test_outage_mid_stream():
	var before = EngineBridge.get_stats()
	var config_signals = got["config_changed"].size()
	var start = OS.get_ticks_msec()
	var sent = 0
	var ack = ""
	var back_at = -1  # when the wrapper said the daemon listens again
	var reconnected_at = -1
	while reconnected_at < 0 or OS.get_ticks_msec() - reconnected_at < 1000:
		var now = OS.get_ticks_msec()
		if now - start > 40000:
			check(false, "the outage test ran out of time: %s" % str(EngineBridge.get_stats()))
			break
		while sent < (now - start) * STREAM_RATE / 1000:
			if EngineBridge.track_design("stream:tick", sent, {"custom_01": "stream"}) == "":
				check(false, "stream event %d refused" % sent)
			sent += 1
		if ack == "" and now - start >= 1000:
			ack = mark_nowait("outage")
		if ack != "" and back_at < 0 and acked(ack):
			back_at = now
		if (
			back_at >= 0
			and reconnected_at < 0
			and EngineBridge.get_stats()["connects"] > before["connects"]
		):
			reconnected_at = now
		yield(get_tree(), "idle_frame")
	var ok = yield(wait("drained", [EngineBridge], 30.0), "completed")
	var after = EngineBridge.get_stats()
	check(ok, "every stream event acknowledged: %s" % str(after))
	check(
		back_at > 0 and reconnected_at - back_at < RECONNECT_LAG_MS,
		"reconnected %d ms after the daemon was back" % (reconnected_at - back_at)
	)
	check(after["acked"] - before["acked"] == sent, "acked exactly the stream's events")
	check(
		after["dropped"] == 0 and after["abandoned"] == 0, "nothing dropped: %s" % str(after)
	)
	check(got["connection_changed"].size() >= 3, "connection_changed(false) then (true)")
	check(got["connection_state_changed"].back()[0] == "connected", "connected again")
	check(
		got["config_changed"].size() == config_signals,
		"the re-sent config snapshot (same versions) raised no config_changed"
	)
	fact("stream", {"events": sent})


# A second bridge with a tiny queue. Its first events go out to a daemon that answers nothing
# (stopped); the connection is then dropped, so they come back to the queue unacknowledged, and more
# events overflow it. `dropped` counts only the events never sent; those sent go to abandoned.
func _test_overflow_counts_only_unsent():
	var other = load(ADDON + "/engine_bridge.gd").new()
	var nobody = OS.get_environment("EB_TEST_DEAD_ENDPOINT")  # a port nothing listens on
	check(other.configure({"queue_size": OVERFLOW_QUEUE}), "configure a second bridge")
	add_child(other)
	var ok = yield(wait("online", [other], 15.0), "completed")
	check(ok, "the second bridge is welcomed")
	yield(mark("pause_daemon"), "completed")
	for i in range(OVERFLOW_QUEUE):
		other.track_design("overflow:event", i, {"custom_01": "overflow"})
	ok = yield(wait("stat_at_least", [other, "sent", OVERFLOW_QUEUE], 10.0), "completed")
	check(
		ok and other.pending_count() == OVERFLOW_QUEUE,
		"sent, unacknowledged: %s" % str(other.get_stats())
	)
	check(
		other.configure({"ingress_endpoint": nobody, "configs_endpoint": nobody}),
		"the daemon out of reach"
	)
	check(other.get_stats()["queued"] == OVERFLOW_QUEUE, "what was in flight is back in the queue")
	for i in range(OVERFLOW_QUEUE, OVERFLOW_EVENTS):
		other.track_design("overflow:event", i, {"custom_01": "overflow"})
	var s = other.get_stats()
	check(
		(
			s["queued"] == OVERFLOW_QUEUE
			and s["abandoned"] == OVERFLOW_QUEUE
			and s["dropped"] == OVERFLOW_EVENTS - 2 * OVERFLOW_QUEUE
		),
		"a full queue drops the oldest, counted apart when they were sent: %s" % str(s)
	)
	yield(mark("resume_daemon"), "completed")
	other.configure(daemon_endpoints())
	ok = yield(wait("drained", [other], 15.0), "completed")
	check(ok and other.is_online(), "the kept events went out once the daemon was there")
	check(
		EngineBridge.get_stats()["device_id"] == other.get_stats()["device_id"],
		"the device id is stable per install"
	)
	fact("overflow", {"sent": OVERFLOW_QUEUE, "never_sent": OVERFLOW_EVENTS - 2 * OVERFLOW_QUEUE})
	other.queue_free()


# auto_launch: with no daemon on its endpoints, a bridge starts one itself (the wrapper's script in
# its base directory, which runs the repository's daemon with its own data directory) on fresh
# ports, and delivers; freed, it stops that daemon (the wrapper sees it end while Godot runs on).
func _test_auto_launch():
	var spec = parse_json(OS.get_environment("EB_TEST_LAUNCH"))
	check(typeof(spec) == TYPE_DICTIONARY, "EB_TEST_LAUNCH set")
	if typeof(spec) != TYPE_DICTIONARY:
		return
	var launcher = load(ADDON + "/engine_bridge.gd").new()
	var settings = {
		"ingress_endpoint": spec["ingress"],
		"configs_endpoint": spec["publish"],
		"auto_launch": true,
		"daemon_executable": spec["executable"],
		"daemon_arguments": spec["arguments"],
		"daemon_base_dir": spec["base_dir"],
		"game": spec["game"],
	}
	check(launcher.configure(settings), "configure auto_launch")
	add_child(launcher)
	var id = launcher.track_design("launch:event", 1, {"custom_01": "launched"})
	var ok = yield(wait("drained", [launcher], 60.0), "completed")
	var s = launcher.get_stats()
	fact("launched", {"pid": s["daemon_pid"], "event": id})
	check(s["daemon_pid"] > 0, "auto_launch started the daemon: %s" % str(s))
	check(ok and s["stored"] == 1, "the event reached the daemon it launched: %s" % str(s))
	# That daemon verifies no purchases: the error reply goes to the callback, like a verdict.
	var refused = launcher.verify_purchase("apple", receipts["valid"], funcref(self, "_on_verdict"))
	ok = yield(wait("has_verdict", [refused], 10.0), "completed")
	check(ok, "the callback had the error reply")
	if ok:
		var r = verdicts[refused][0]
		check(
			r["error"] == "not_configured" and r["message"] != "" and r["is_valid"] == false,
			"not_configured, not valid: %s" % str(r)
		)
	launcher.queue_free()
	yield(get_tree(), "idle_frame")  # freed at the end of the frame
	yield(mark("launcher_freed"), "completed")


# --- phase "refusals": a daemon whose GameAnalytics provider refuses an event ------------------


func _run_refusals():
	var ok = yield(wait("is_online", [], 15.0), "completed")
	check(ok, "welcomed by the daemon with GameAnalytics")
	# GameAnalytics takes event id parts of [A-Za-z0-9 -_.()!?] only; the daemon's own checks pass it.
	var bad = EngineBridge.track_design("shop:buy#1")
	EngineBridge.track_design("shop:buy:ok")
	ok = yield(wait("has_signal_count", ["provider_refused", 1], 10.0), "completed")
	check(ok, "provider_refused came")
	if ok:
		var s = got["provider_refused"][0]
		check(
			s[0] == bad and s[1] == "gameanalytics" and s[2].find("buy#1") >= 0,
			"provider_refused(id, provider, rule): %s" % str(s)
		)
		fact("refusal", {"id": bad, "rule": s[2]})
	ok = yield(wait("drained", [EngineBridge], 10.0), "completed")
	var stats = EngineBridge.get_stats()
	check(
		ok and stats["provider_refusals"] == 1 and stats["stored"] == 2 and stats["rejected"] == 0,
		"counted in provider_refusals, and stored: %s" % str(stats)
	)
	for i in range(MORE_REFUSALS):
		EngineBridge.track_design("shop:bad#%d" % i)
	ok = yield(wait("has_signal_count", ["provider_refused", 1 + MORE_REFUSALS], 10.0), "completed")
	check(
		ok and EngineBridge.get_stats()["provider_refusals"] == 1 + MORE_REFUSALS,
		"every refusal signalled and counted: %s" % str(EngineBridge.get_stats())
	)
	# They are summed up in one console warning once the interval is over (the wrapper reads it).
	var interval_ms = ProjectSettings.get_setting("engine_bridge/behavior/warning_interval_ms")
	yield(get_tree().create_timer(interval_ms * 1.5 / 1000.0), "timeout")
	fact("refusals", {"count": 1 + MORE_REFUSALS})
	_finish()


# --- phase "absent": nothing at the endpoint, then another program, then the daemon ------------


func _run_absent():
	var bridge = load(ADDON + "/engine_bridge.gd").new()
	var nobody = OS.get_environment("EB_TEST_DEAD_ENDPOINT")
	var foreign = OS.get_environment("EB_TEST_FOREIGN_ENDPOINT")
	check(
		bridge.configure({"ingress_endpoint": nobody, "configs_endpoint": nobody}),
		"point at nothing"
	)
	record_signals(bridge)
	add_child(bridge)
	bridge.track_design("absent:waiting")
	var ok = yield(wait("state_is", [bridge, "unreachable"], 10.0), "completed")
	check(
		ok and got["connection_state_changed"].size() == 1,
		"unreachable: %s" % str(got["connection_state_changed"])
	)
	check(
		bridge.get_last_error().find("no engine-bridge daemon answers at " + nobody) >= 0,
		"get_last_error says so: %s" % bridge.get_last_error()
	)
	# It goes on trying without saying it again (the wrapper counts the console lines).
	var failures = bridge.get_stats()["connect_failures"]
	ok = yield(wait("stat_at_least", [bridge, "connect_failures", failures + 3], 10.0), "completed")
	check(
		ok and got["connection_state_changed"].size() == 1, "three more attempts, nothing more said"
	)
	check(bridge.configure({"ingress_endpoint": foreign}), "point at another program")
	ok = yield(wait("state_is", [bridge, "wrong_peer"], 10.0), "completed")
	check(ok, "wrong_peer: %s" % str(got["connection_state_changed"]))
	check(
		bridge.get_last_error().find(foreign + " belongs to another program") >= 0,
		"get_last_error says so: %s" % bridge.get_last_error()
	)
	failures = bridge.get_stats()["connect_failures"]
	ok = yield(wait("stat_at_least", [bridge, "connect_failures", failures + 3], 10.0), "completed")
	check(
		ok and got["connection_state_changed"].size() == 3, "three more attempts, nothing more said"
	)
	check(bridge.configure(daemon_endpoints()), "point at the daemon")
	ok = yield(wait("drained", [bridge], 10.0), "completed")
	check(
		ok and bridge.get_connection_state() == "connected",
		"connected, the waiting event delivered"
	)
	check(bridge.get_last_error() == "", "get_last_error cleared: %s" % bridge.get_last_error())
	check(same(got["connection_changed"], [[true]]), "connection_changed(true)")
	var states = []
	for s in got["connection_state_changed"]:
		states.append(s[0])
	check(
		same(states, ["unreachable", "connecting", "wrong_peer", "connecting", "connected"]),
		"the states in order: %s" % str(states)
	)
	fact("absent", {"nobody": nobody, "foreign": foreign})
	_finish()


# --- phases "quit_<way>": QUIT_EVENTS queued, then the game ends that way -----------------------


func session_started():
	return got["session_started"].size() >= 1


# Every way the game ends that Godot tells about, and shutdown() for a game that ends another way.
# Half of them start the session just before quitting (its reply not yet in), the others quit in
# the middle of one; either way it must end, after every event was stored (the wrapper checks).
func _run_quit(way):
	var ok = yield(wait("is_online", [], 15.0), "completed")
	check(ok, "welcomed")
	var bridge = EngineBridge
	if way == "free":
		bridge = load(ADDON + "/engine_bridge.gd").new()  # never in the tree: only its deletion tells
	if way in ["tree", "remove", "shutdown"]:
		bridge.start_session()
		ok = yield(wait("session_started", [], 10.0), "completed")
		check(ok, "a session is open")
	else:
		bridge.start_session()
	for i in range(QUIT_EVENTS):
		bridge.track_design("quit:" + way, i, {"custom_01": "quit_" + way})
	check(bridge.pending_count() >= QUIT_EVENTS, "the events are queued as the game ends")
	fact("quit", {"way": way, "events": QUIT_EVENTS})
	if way == "tree":
		_finish()  # get_tree().quit(): the autoload leaves the tree
	elif way == "request":
		# What the OS hands Godot when the player closes the window: it ends the game at once.
		get_tree().notification(MainLoop.NOTIFICATION_WM_QUIT_REQUEST)
		check(
			bridge.pending_count() == 0,
			"delivered at the quit request: %s" % str(bridge.get_stats())
		)
		_summary()
	elif way == "remove":
		get_tree().root.remove_child(bridge)
		check(
			bridge.pending_count() == 0,
			"delivered as it left the tree: %s" % str(bridge.get_stats())
		)
		check(got["session_ended"].size() == 1, "and its session ended")
		get_tree().root.add_child(bridge)
		_finish()
	elif way == "free":
		bridge.free()
		_finish()
	elif way == "shutdown":
		check(bridge.shutdown(5000), "shutdown(5000) delivered everything")
		check(got["session_ended"].size() == 1, "and ended the session")
		_summary()
		# A game that ends its own way: no notification comes after this.
		OS.kill(OS.get_process_id())
