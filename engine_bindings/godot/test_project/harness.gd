extends Node
# What every phase of the Godot test runs uses (test_main.gd extends it): checks counted into the
# closing "N passed, N failed" line, EB_FACT and EB_MARK lines for the wrapper
# (tests/bindings/test_godot.py), waits with deadlines, and a recorder of a bridge's signals.

const ADDON = "res://addons/engine_bridge"
# Nothing may hang a run: every wait has a deadline and this watchdog ends the run.
const WATCHDOG_S = 150.0
const SIGNALS_1 = [
	"connection_changed", "configs_updated", "session_started", "session_ended", "flushed"
]
const SIGNALS_2 = ["config_changed", "purchase_verified", "connection_state_changed"]
const SIGNALS_3 = ["event_rejected", "request_failed", "provider_refused"]

var passed = 0
var failed = 0
var got = {}  # signal name -> Array of argument Arrays
var finished = false
var marks = 0  # EB_MARK lines printed so far


func start_watchdog():
	var watchdog = Timer.new()
	watchdog.wait_time = WATCHDOG_S
	watchdog.one_shot = true
	add_child(watchdog)
	watchdog.connect("timeout", self, "_on_watchdog")
	watchdog.start()


# Every signal of `bridge` appends its arguments to got[signal name].
func record_signals(bridge):
	var groups = [SIGNALS_1, SIGNALS_2, SIGNALS_3]
	for n in range(groups.size()):
		for name in groups[n]:
			got[name] = []
			bridge.connect(name, self, "_record%d" % (n + 1), [name])


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


func _summary():
	finished = true
	print("%d passed, %d failed" % [passed, failed])


func _finish():
	if finished:
		return
	_summary()
	get_tree().quit(1 if failed > 0 else 0)


# Yields frames until callv(method, args) is true or timeout_s passes; returns whether it did.
func wait(method, args, timeout_s):
	var until = OS.get_ticks_msec() + int(timeout_s * 1000)
	while true:
		yield(get_tree(), "idle_frame")
		if callv(method, args):
			return true
		if OS.get_ticks_msec() > until:
			return false


# Asks the wrapper to act, without waiting; returns the file that says it has.
func mark_nowait(step):
	marks += 1
	print("EB_MARK " + step)
	return OS.get_environment("EB_TEST_ACK_DIR").plus_file(str(marks))


func acked(path):
	return File.new().file_exists(path)


# Asks the wrapper to act and yields until it says it has (at most 20 s).
func mark(step):
	var ok = yield(wait("acked", [mark_nowait(step)], 20.0), "completed")
	check(ok, "the wrapper acted on %s" % step)


# The test daemon's endpoints, as the wrapper wrote them into project.godot.
func daemon_endpoints():
	return {
		"ingress_endpoint":
		ProjectSettings.get_setting("engine_bridge/connection/ingress_endpoint"),
		"configs_endpoint":
		ProjectSettings.get_setting("engine_bridge/connection/configs_endpoint"),
	}


func online(bridge):
	return bridge.is_online()


func drained(bridge):
	return bridge.pending_count() == 0


func stat_at_least(bridge, key, n):
	return bridge.get_stats()[key] >= n


func state_is(bridge, state):
	return bridge.get_connection_state() == state


func has_signal_count(name, n):
	return got[name].size() >= n


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
