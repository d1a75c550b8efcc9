extends Node
# The Godot binding's headless test run (Godot 3), driven by tests/bindings/test_godot.py: the
# msgpack codec against vectors made by Python's msgpack, then the EngineBridge autoload against a
# real daemon and a staq sandbox. Prints "EB_MARK <step>" when the wrapper must act (it answers
# each mark by creating the file <EB_TEST_ACK_DIR>/<mark's ordinal>), "EB_FACT <name> <json>" for
# what the wrapper checks in the store afterwards, and last "N passed, N failed".
# EB_TEST_PHASE=restart runs the second phase instead: the game started again after quitting with a
# purchase still pending.

const Vectors = preload("res://vectors.gd")
const ADDON = "res://addons/engine_bridge"
# Nothing here may hang the run: every wait has a deadline and this watchdog ends the run.
const WATCHDOG_S = 150.0
const STREAM_EVENTS = 3000
const OVERFLOW_EVENTS = 25
const OVERFLOW_QUEUE = 10
const SIGNALS_1 = ["connection_changed", "configs_updated", "session_started", "session_ended", "flushed"]
const SIGNALS_2 = ["config_changed", "purchase_verified"]
const SIGNALS_3 = ["event_rejected", "request_failed"]

var passed = 0
var failed = 0
var got = {}  # signal name -> Array of argument Arrays
var adapter
var codec
var finished = false
var marks = 0  # EB_MARK lines printed so far
var receipts = {}  # name -> a base64 receipt the wrapper registered with the staq sandbox
var verdicts = {}  # purchase id -> the results its verify_purchase callback received


# Stands in for a shop screen closed before its purchase's verdict came.
class ClosedShop:
	extends Reference

	func on_verdict(_purchase_id, _result):
		print("FAIL: a freed object's callback was called")


func _ready():
	var watchdog = Timer.new()
	watchdog.wait_time = WATCHDOG_S
	watchdog.one_shot = true
	add_child(watchdog)
	watchdog.connect("timeout", self, "_on_watchdog")
	watchdog.start()
	for name in SIGNALS_1:
		got[name] = []
		EngineBridge.connect(name, self, "_record1", [name])
	for name in SIGNALS_2:
		got[name] = []
		EngineBridge.connect(name, self, "_record2", [name])
	for name in SIGNALS_3:
		got[name] = []
		EngineBridge.connect(name, self, "_record3", [name])
	adapter = load(ADDON + "/godot3/adapter.gd").new()
	codec = load(ADDON + "/msgpack.gd").new(adapter)
	receipts = parse_json(OS.get_environment("EB_TEST_RECEIPTS"))
	if OS.get_environment("EB_TEST_PHASE") == "restart":
		_run_restart()
	else:
		_run()


func _record1(a, name):
	got[name].append([a])


func _record2(a, b, name):
	got[name].append([a, b])


func _record3(a, b, c, name):
	got[name].append([a, b, c])


func check(ok, what):
	if ok:
		passed += 1
	else:
		failed += 1
		print("FAIL: ", what)


func fact(name, value):
	print("EB_FACT %s %s" % [name, to_json(value)])


func _on_watchdog():
	print("FAIL: watchdog: the run took over %d s" % WATCHDOG_S)
	failed += 1
	_finish()


func _finish():
	if finished:
		return
	finished = true
	print("%d passed, %d failed" % [passed, failed])
	get_tree().quit(1 if failed > 0 else 0)


# Yields frames until callv(method, args) is true or timeout_s passes; returns whether it became true.
func wait(method, args, timeout_s):
	var until = OS.get_ticks_msec() + int(timeout_s * 1000)
	while true:
		yield(get_tree(), "idle_frame")
		if callv(method, args):
			return true
		if OS.get_ticks_msec() > until:
			return false


func sleep(seconds):
	yield(get_tree().create_timer(seconds), "timeout")


# Asks the wrapper to act, without waiting.
func mark_nowait(step):
	marks += 1
	print("EB_MARK " + step)


func acked(path):
	return File.new().file_exists(path)


# Asks the wrapper to act and yields until it says it has (at most 15 s).
func mark(step):
	mark_nowait(step)
	var ack = OS.get_environment("EB_TEST_ACK_DIR").plus_file(str(marks))
	var ok = yield(wait("acked", [ack], 15.0), "completed")
	check(ok, "the wrapper acted on %s" % step)


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


func _run():
	test_codec_vectors()
	test_codec_errors()
	test_settings_and_plugin()
	yield(test_connect_and_configs(), "completed")
	yield(test_every_helper(), "completed")
	yield(test_sessions_and_flush(), "completed")
	yield(test_purchases(), "completed")
	test_bad_arguments()
	yield(test_config_updates(), "completed")
	yield(test_heartbeat(), "completed")
	yield(test_restart_mid_stream(), "completed")
	yield(test_queue_bound_and_quit_drain(), "completed")
	yield(test_auto_launch(), "completed")
	test_no_verdict_twice()
	yield(test_quit_with_a_pending_purchase(), "completed")
	_finish()


# --- msgpack --------------------------------------------------------------------------------------


func test_codec_vectors():
	var cases = Vectors.cases()
	check(cases.size() >= 60, "at least 60 msgpack vectors, got %d" % cases.size())
	for c in cases:
		var name = c[0]
		var hex = c[1]
		var value = c[2]
		var mode = c[3]
		if mode == "both":
			var encoded = codec.encode(value)
			check(codec.error == "" and encoded.hex_encode() == hex, "encode %s: %s != %s %s" % [
				name, encoded.hex_encode().substr(0, 80), hex.substr(0, 80), codec.error
			])
		var decoded = codec.decode(Vectors.from_hex(hex))
		check(codec.error == "" and same(decoded, value), "decode %s: %s (%s)" % [
			name, str(decoded).substr(0, 80), codec.error
		])


func test_codec_errors():
	var bad = {
		"empty input": [],
		"reserved byte 0xc1": [0xc1],
		"ext 8": [0xc7, 1, 5, 0],
		"fixext 1": [0xd4, 1, 0],
		"truncated uint 32": [0xce, 0, 1],
		"truncated str 8": [0xd9, 5, 0x61],
		"truncated array": [0x92, 1],
		"truncated map": [0x81, 0xa1, 0x61],
		"array 32 claiming 4 billion items": [0xdd, 0xff, 0xff, 0xff, 0xff, 1],
		"bytes after the value": [0x01, 0x02],
	}
	for name in bad:
		var v = codec.decode(PoolByteArray(bad[name]))
		check(v == null and codec.error != "", "decode error for %s: %s" % [name, codec.error])
	var deep = PoolByteArray()
	for _i in range(100):
		deep.append(0x91)
	deep.append(0x01)
	codec.decode(deep)
	check(codec.error.find("nested") >= 0, "deep nesting refused: %s" % codec.error)
	for value in [Vector2(1, 2), self, [1, Rect2()], {"k": Color(1, 0, 0)}]:
		codec.encode(value)
		check(codec.error.find("cannot encode") >= 0, "encode refuses %s: %s" % [str(value), codec.error])
	var packed = codec.encode(PoolStringArray(["a", "é"]))
	check(packed.hex_encode() == codec.encode(["a", "é"]).hex_encode(), "a PoolStringArray is an array")


# Strict equality: types must match (1 is not 1.0), maps and arrays compared deeply.
func same(a, b):
	if typeof(a) != typeof(b):
		return false
	if typeof(a) == TYPE_DICTIONARY:
		if a.size() != b.size():
			return false
		for k in a:
			if not b.has(k) or not same(a[k], b[k]):
				return false
		return true
	if typeof(a) == TYPE_ARRAY:
		if a.size() != b.size():
			return false
		for i in range(a.size()):
			if not same(a[i], b[i]):
				return false
		return true
	if typeof(a) == TYPE_RAW_ARRAY:
		return a.hex_encode() == b.hex_encode()
	if typeof(a) == TYPE_REAL and is_nan(a):
		return is_nan(b)
	return a == b


# --- settings and the Godot 3 editor plugin -------------------------------------------------------


func test_settings_and_plugin():
	# project.godot sets daemon/auto_launch to the string "yes": reported at start, default used.
	var startup_error = EngineBridge.get_last_error()
	check(startup_error.find("auto_launch") >= 0, "a mistyped Project Setting is reported: %s" % [
		startup_error
	])
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


# --- against the daemon ---------------------------------------------------------------------------


func is_online():
	return EngineBridge.is_online()


func has_signal_count(name, n):
	return got[name].size() >= n


func test_connect_and_configs():
	fact("device_id", EngineBridge.get_stats()["device_id"])
	var online = yield(wait("is_online", [], 15.0), "completed")
	check(online, "connected and welcomed: %s" % str(EngineBridge.get_stats()))
	check(got["connection_changed"].size() == 1 and got["connection_changed"][0][0] == true,
		"connection_changed(true) once")
	var snap = yield(wait("has_signal_count", ["configs_updated", 1], 10.0), "completed")
	check(snap, "configs_updated arrived")
	if snap:
		check(same(got["configs_updated"][0][0], {"difficulty": "hard", "max_lives": 5}),
			"configs snapshot: %s" % str(got["configs_updated"][0][0]))
	check(EngineBridge.get_config("difficulty") == "hard", "get_config difficulty")
	check(same(EngineBridge.get_config("max_lives"), 5), "get_config max_lives is the int 5")
	check(EngineBridge.get_config("absent", 42) == 42, "get_config default")
	check(got["config_changed"].size() == 2, "config_changed once per key: %s" % str(got["config_changed"]))
	var changed = {}
	for c in got["config_changed"]:
		changed[c[0]] = c[1]
	check(same(changed, {"difficulty": "hard", "max_lives": 5}), "config_changed values")


func is_drained():
	return EngineBridge.pending_count() == 0


# Every helper once, with the values the wrapper expects to find in the store.
func test_every_helper():
	var before = EngineBridge.get_stats()
	var ids = {
		"design": EngineBridge.track_design("ui:click:play", 1.5),
		"design_int": EngineBridge.track_design("level:boss:defeated", 3, {"custom_01": "hard"}),
		"design_bare": EngineBridge.track_design("menu"),
		"business": EngineBridge.track_business("USD", 99, "gems", "pack_small", "shop",
			{"receipt_info": {"store": "apple"}}),
		"progression": EngineBridge.track_progression("Complete", "world01", "level01", "", 100, 2),
		"progression_short": EngineBridge.track_progression("Start", "world02"),
		"resource": EngineBridge.track_resource("Sink", "gold", 25.5, "boost", "speed"),
		"error": EngineBridge.track_error("warning", "Texture missing: ünïcödé 日本"),
		"ads": EngineBridge.track_ads("show", "rewarded_video", "admob", "end_of_level", 15000, ""),
		"custom": EngineBridge.track("tutorial_skipped", {
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
		}),
	}
	for key in ids:
		check(typeof(ids[key]) == TYPE_STRING and ids[key] != "", "%s returns an event id" % key)
	fact("helper_ids", ids)
	var drained = yield(wait("is_drained", [], 15.0), "completed")
	var after = EngineBridge.get_stats()
	check(drained, "helper events acknowledged: %s" % str(after))
	check(after["acked"] - before["acked"] == ids.size(), "one ack per helper event")
	check(after["stored"] - before["stored"] == ids.size(), "every helper event stored")
	check(after["rejected"] == 0 and got["event_rejected"].size() == 0,
		"no event rejected: %s" % str(got["event_rejected"]))
	# A paused game still delivers (and still answers the daemon's PINGs).
	get_tree().paused = true
	var paused_id = EngineBridge.track_design("pause:menu")
	drained = yield(wait("is_drained", [], 10.0), "completed")
	get_tree().paused = false
	check(drained and paused_id != "", "events go out while the game is paused")


func test_sessions_and_flush():
	EngineBridge.start_session()
	var inside = EngineBridge.track_design("session:inside")
	EngineBridge.end_session()
	var ok = yield(wait("has_signal_count", ["session_ended", 1], 10.0), "completed")
	check(ok and got["session_started"].size() == 1, "session_started then session_ended")
	if ok and got["session_started"].size() == 1:
		var started = got["session_started"][0][0]
		var ended = got["session_ended"][0][0]
		check(typeof(started["session_id"]) == TYPE_STRING and started["session_id"].length() == 36,
			"session_id is a UUID: %s" % str(started))
		check(ended["session_id"] == started["session_id"], "the same session ended")
		check(typeof(ended["ended_at"]) == TYPE_INT, "ended_at set")
		check(EngineBridge.get_stats()["session_id"] == "", "no open session after end_session")
		fact("session", {"id": started["session_id"], "event": inside})
	EngineBridge.end_session()
	ok = yield(wait("has_signal_count", ["request_failed", 1], 10.0), "completed")
	check(ok and got["request_failed"][0][0] == "session_end" and got["request_failed"][0][1] == "no_session",
		"a second end_session fails with no_session: %s" % str(got["request_failed"]))
	EngineBridge.flush()
	ok = yield(wait("has_signal_count", ["flushed", 1], 10.0), "completed")
	check(ok and typeof(got["flushed"][0][0]) == TYPE_INT, "flushed(queued) arrived")


# The verdict on one purchase, checked: its callback called once with this result.
func check_verdict(purchase_id, is_valid, is_duplicate, what):
	var ok = yield(wait("has_verdict", [purchase_id], 10.0), "completed")
	check(ok, "%s: the callback was called" % what)
	if not ok:
		return
	var r = verdicts[purchase_id][0]
	check(times(purchase_id) == 1, "%s: called once" % what)
	check(r["is_valid"] == is_valid and r["is_duplicate"] == is_duplicate,
		"%s: is_valid %s, is_duplicate %s: %s" % [what, is_valid, is_duplicate, str(r)])
	check(r["error"] == "" and r["message"] == "" and r["store"] == "apple" and r["reason"] != "",
		"%s: a verdict, not an error: %s" % [what, str(r)])


# A purchase whose callback's object is freed before the verdict. Not a coroutine: a yielding
# function keeps its temporaries (the shop) alive until it ends.
func buy_and_close_the_shop(receipt):
	var shop = ClosedShop.new()
	return EngineBridge.verify_purchase("apple", receipt, funcref(shop, "on_verdict"))


func test_purchases():
	var on_verdict = funcref(self, "_on_verdict")
	var signals = got["purchase_verified"].size()
	var ids = {}
	ids["valid"] = EngineBridge.verify_purchase("apple", receipts["valid"], on_verdict, 0.99, "",
		{"sku": "gems_100"})
	check(ids["valid"] != "" and verdicts.size() == 0, "verify_purchase returns an id, at once")
	yield(check_verdict(ids["valid"], true, false, "a valid receipt"), "completed")
	if has_verdict(ids["valid"]):
		check(same(verdicts[ids["valid"]][0]["metadata"], {"sku": "gems_100"}), "the result has the metadata")
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
		check(reported.has(ids[name]) and reported[ids[name]]["is_valid"] == true,
			"purchase_verified(%s, valid): %s" % [name, str(reported)])
	# staq down: the reply says pending after 5 s, and the verdict comes when staq is back.
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
	# Each new verdict republishes the device's topic with every earlier one: none is told again.
	ids["last"] = EngineBridge.verify_purchase("apple", receipts["last"], on_verdict)
	yield(check_verdict(ids["last"], true, false, "one more purchase"), "completed")
	yield(sleep(0.5), "completed")
	for name in ids:
		if name != "plain" and name != "closed":
			check(times(ids[name]) == 1, "%s: still one callback" % name)
	check(got["purchase_verified"].size() == signals + 2, "purchase_verified told nothing again")
	fact("purchases", ids)


# Across the daemon's restart (its topic sent again to the reconnected SUB) and the other bridges
# sharing this device id: still one result per purchase.
func test_no_verdict_twice():
	var ids = []
	for purchase_id in verdicts:
		ids.append(purchase_id)
		check(times(purchase_id) == 1, "one callback for %s: %s" % [purchase_id, str(verdicts[purchase_id])])
	var told = {}
	for s in got["purchase_verified"]:
		check(not told.has(s[0]) and not verdicts.has(s[0]), "%s told once, in one place" % s[0])
		told[s[0]] = true
	check(ids.size() >= 6 and told.size() == 2, "every purchase counted: %s %s" % [ids, told])


# The game quits with a purchase the daemon has but staq has not verified, and one the daemon never
# got: the second phase (_run_restart) gets both verdicts.
func test_quit_with_a_pending_purchase():
	var on_verdict = funcref(self, "_on_verdict")
	yield(mark("staq_down"), "completed")
	var orphan = EngineBridge.verify_purchase("apple", receipts["orphan"], on_verdict, 1.99, "", {"sku": "orphan"})
	var ok = yield(wait("reply_came", [], 10.0), "completed")
	check(ok and times(orphan) == 0, "the purchase is pending as the game quits")
	check(EngineBridge.configure({"ingress_endpoint": OS.get_environment("EB_TEST_DEAD_ENDPOINT")}),
		"the daemon out of reach")
	var unsent = EngineBridge.verify_purchase("apple", receipts["unsent"], on_verdict, 2.99, "", {"sku": "unsent"})
	yield(sleep(0.5), "completed")
	check(unsent != "" and EngineBridge.pending_count() == 1 and not EngineBridge.is_online(),
		"a purchase waits unsent as the game quits: %s" % str(EngineBridge.get_stats()))
	check(EngineBridge.get_stats()["purchases_awaiting"] == 2, "two purchases await their verdict")
	fact("orphan", orphan)
	fact("unsent", unsent)


# Phase two: the same install started again after test_quit_with_a_pending_purchase, with staq back
# (the daemon has verified the pending purchase meanwhile; the unsent one goes out now).
func _run_restart():
	var left = {OS.get_environment("EB_TEST_ORPHAN"): "orphan", OS.get_environment("EB_TEST_UNSENT"): "unsent"}
	check(EngineBridge.get_stats()["purchases_awaiting"] == 2, "two purchases taken up from the first run")
	var ok = yield(wait("has_signal_count", ["purchase_verified", 2], 20.0), "completed")
	check(ok and EngineBridge.is_online(), "two verdicts came after the restart: %s" % [
		str(got["purchase_verified"])
	])
	for s in got["purchase_verified"]:
		var name = left.get(s[0], "")
		check(name != "", "%s is a purchase the first run left without a verdict" % s[0])
		check(s[1]["is_valid"] == true and s[1]["error"] == "" and s[1]["store"] == "apple",
			"its verdict: %s" % str(s[1]))
		check(same(s[1]["metadata"], {"sku": name}), "with its metadata: %s" % str(s[1]))
		left.erase(s[0])
	yield(sleep(1.0), "completed")
	check(got["purchase_verified"].size() == 2,
		"purchases the first run handled are not told again: %s" % str(got["purchase_verified"]))
	var fresh = EngineBridge.verify_purchase("apple", receipts["fresh"], funcref(self, "_on_verdict"))
	yield(check_verdict(fresh, true, false, "a purchase after the restart"), "completed")
	yield(sleep(0.5), "completed")
	check(got["purchase_verified"].size() == 2, "the republished topic tells nothing again")
	check(EngineBridge.get_stats()["purchases_awaiting"] == 0, "nothing awaits a verdict")
	fact("fresh", fresh)
	_finish()


# Each bad call returns "" at once, names the argument, queues nothing and crashes nothing.
func test_bad_arguments():
	var deep = {"a": {"b": {"c": {"d": {"e": 1}}}}}
	var many = {}
	for i in range(70):
		many["k%d" % i] = i
	var calls = [
		["track_design", [123], "event_id"],
		["track_design", [null], "event_id"],
		["track_design", ["a:b:c:d:e:f"], "event_id"],
		["track_design", ["ui::x"], "empty part"],
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
		["track_business", ["USD", 99, "gems:x", "pack"], "item_type"],
		["track_business", ["USD", 99, "gems", ""], "item_id"],
		["track_progression", ["Begin", "world01"], "status"],
		["track_progression", ["Start", ""], "progression_01"],
		["track_progression", ["Start", "w", "", "phase"], "progression_03"],
		["track_progression", ["Start", "w", "l", "", "high"], "score"],
		["track_resource", ["Gain", "gold", 5, "a", "b"], "flow"],
		["track_resource", ["Source", "gold", "five", "a", "b"], "amount"],
		["track_error", ["fatal", "boom"], "severity"],
		["track_error", ["error", 42], "message"],
		["track_ads", ["", "video", "admob", "end"], "ad_action"],
		["track_ads", ["show", "video", "admob", "end", 1.5], "ad_duration"],
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
		check(result == "" and message.find(c[0]) >= 0 and message.find(c[2]) >= 0,
			"%s%s refused naming %s: %s" % [c[0], str(c[1]).substr(0, 60), c[2], message])
	check(EngineBridge.pending_count() == before, "refused calls queue nothing")
	check(EngineBridge.configure({"queue_sizes": 5}) == false, "configure: unknown key refused")
	check(EngineBridge.configure({"queue_size": "5"}) == false, "configure: wrong type refused")
	check(EngineBridge.configure({"ingress_endpoint": "ipc:///tmp/x"}) == false,
		"configure: ipc endpoint refused")
	check(EngineBridge.get_last_error().find("tcp://") >= 0, "the endpoint error says tcp://")
	check(EngineBridge.configure({"ingress_endpoint": "tcp://example.com:5555"}) == false,
		"configure: host names refused (resolving would block)")
	check(EngineBridge.is_online(), "still online after refused settings")


func config_is(key, value):
	for c in got["config_changed"]:
		if c[0] == key and same(c[1], value):
			return true
	return false


func test_config_updates():
	var updates_before = got["configs_updated"].size()
	mark_nowait("config_update")
	var ok = yield(wait("config_is", ["difficulty", "nightmare"], 15.0), "completed")
	check(ok, "config_changed(difficulty, nightmare) after the file changed")
	check(config_is("max_lives", null), "config_changed(max_lives, null) for a removed key: %s" % [
		str(got["config_changed"])
	])
	check(config_is("speed", 1.25), "config_changed(speed, 1.25) for a new key")
	check(got["configs_updated"].size() > updates_before, "configs_updated after the change")
	check(same(EngineBridge.get_configs(), {"difficulty": "nightmare", "speed": 1.25}),
		"get_configs: %s" % str(EngineBridge.get_configs()))
	check(EngineBridge.get_config("max_lives", -1) == -1, "a removed key reads as the default")


func has_pings():
	return EngineBridge.get_stats()["pings_received"] >= 1


# The daemon PINGs every 5 s and drops a silent client after 15 s: answer and stay connected.
func test_heartbeat():
	var ok = yield(wait("has_pings", [], 12.0), "completed")
	var stats = EngineBridge.get_stats()
	check(ok, "a ZMTP PING from the daemon arrived: %s" % str(stats))
	check(stats["connects"] == 1, "still the first connection after PING/PONG")


func reconnected_and_drained(connects):
	var s = EngineBridge.get_stats()
	return s["connects"] > connects and s["pending"] == 0 and s["queued"] == 0


# STREAM_EVENTS events over about 3 s; the wrapper kills the daemon (SIGKILL) a third of the way in
# and starts it again. Every event must be acknowledged and stored exactly once.
func test_restart_mid_stream():
	var before = EngineBridge.get_stats()
	var config_signals = got["config_changed"].size()
	var start = OS.get_ticks_msec()
	var sent = 0
	var marked = false
	while sent < STREAM_EVENTS:
		var due = min(STREAM_EVENTS, (OS.get_ticks_msec() - start) + 1)
		while sent < due:
			if EngineBridge.track_design("stream:tick", sent, {"custom_01": "stream"}) == "":
				check(false, "stream event %d refused" % sent)
			sent += 1
		if not marked and sent >= STREAM_EVENTS / 3:
			marked = true
			mark_nowait("restart")
		yield(get_tree(), "idle_frame")
	var ok = yield(wait("reconnected_and_drained", [before["connects"]], 40.0), "completed")
	var after = EngineBridge.get_stats()
	check(ok, "reconnected and every stream event acknowledged: %s" % str(after))
	check(after["acked"] - before["acked"] == STREAM_EVENTS, "acked exactly the stream's events")
	check(after["dropped"] == 0, "nothing dropped while the daemon was away")
	check(got["connection_changed"].size() >= 3, "connection_changed(false) then (true)")
	yield(sleep(1.0), "completed")
	check(got["config_changed"].size() == config_signals,
		"the re-sent config snapshot (same versions) raised no config_changed")
	fact("stream", {"events": STREAM_EVENTS, "duplicates": after["duplicates"] - before["duplicates"]})


func other_drained(bridge):
	return bridge.pending_count() == 0


# A second EngineBridge with a tiny queue and no daemon keeps the newest OVERFLOW_QUEUE events and
# counts the rest as dropped; pointed at the daemon, it delivers them. Then its quit drain.
func test_queue_bound_and_quit_drain():
	var other = load(ADDON + "/engine_bridge.gd").new()
	var nobody = OS.get_environment("EB_TEST_DEAD_ENDPOINT")  # a port nothing listens on
	check(nobody.begins_with("tcp://"), "EB_TEST_DEAD_ENDPOINT set: %s" % nobody)
	check(other.configure({
		"ingress_endpoint": nobody,
		"configs_endpoint": nobody,
		"queue_size": OVERFLOW_QUEUE,
		"quit_drain_ms": 5000,
	}), "configure a second bridge")
	add_child(other)
	for i in range(OVERFLOW_EVENTS):
		other.track_design("overflow:event", i, {"custom_01": "overflow"})
	yield(sleep(0.5), "completed")
	var s = other.get_stats()
	check(s["queued"] == OVERFLOW_QUEUE and s["dropped"] == OVERFLOW_EVENTS - OVERFLOW_QUEUE,
		"a full queue drops the oldest: %s" % str(s))
	check(not s["online"] and s["connect_failures"] >= 1, "no daemon there: %s" % str(s))
	var real = EngineBridge.get_stats()
	other.configure({
		"ingress_endpoint": ProjectSettings.get_setting("engine_bridge/connection/ingress_endpoint"),
		"configs_endpoint": ProjectSettings.get_setting("engine_bridge/connection/configs_endpoint"),
	})
	var ok = yield(wait("other_drained", [other], 15.0), "completed")
	check(ok and other.is_online(), "the kept events went out once the daemon was there")
	check(real["device_id"] == other.get_stats()["device_id"], "the device id is stable per install")
	# Quit: queued events get quit_drain_ms to be acknowledged before the game closes.
	for i in range(5):
		other.track_design("quit:event", i, {"custom_01": "quit"})
	other.notification(MainLoop.NOTIFICATION_WM_QUIT_REQUEST)
	check(other.pending_count() == 0, "the quit drain delivered everything: %s" % str(other.get_stats()))
	other.queue_free()


# auto_launch: with no daemon on its endpoints, a bridge starts one itself (the command comes from
# the wrapper: the repository's daemon on fresh ports and its own data directory) and delivers.
func test_auto_launch():
	var spec = parse_json(OS.get_environment("EB_TEST_LAUNCH"))
	check(typeof(spec) == TYPE_DICTIONARY, "EB_TEST_LAUNCH set")
	if typeof(spec) != TYPE_DICTIONARY:
		return
	var launcher = load(ADDON + "/engine_bridge.gd").new()
	check(launcher.configure({
		"ingress_endpoint": spec["ingress"],
		"configs_endpoint": spec["publish"],
		"auto_launch": true,
		"daemon_executable": spec["executable"],
		"daemon_arguments": spec["arguments"],
	}), "configure auto_launch")
	add_child(launcher)
	var id = launcher.track_design("launch:event", 1, {"custom_01": "launched"})
	var ok = yield(wait("other_drained", [launcher], 60.0), "completed")
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
		check(r["error"] == "not_configured" and r["message"] != "" and r["is_valid"] == false,
			"not_configured, not valid: %s" % str(r))
	launcher.queue_free()
