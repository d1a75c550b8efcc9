extends Node
# The Godot binding's benchmark run (headless Godot 3), driven by benchmarks/bench_godot.py:
# the per-call cost of EngineBridge.track_design and the sustained rate of events acknowledged by
# the daemon. Prints one line "EB_BENCH <json>" and quits; a number, never a pass/fail verdict.

const CALL_ROUNDS = 200
const CALLS_PER_ROUND = 500
const SUSTAIN_S = 5.0
# During the sustained phase the game keeps this many events waiting, so the binding never idles.
const BACKLOG = 20000
const WAIT_S = 120.0


func _ready():
	_run()


func _wait_until(method, timeout_s):
	var until = OS.get_ticks_msec() + int(timeout_s * 1000)
	while not call(method) and OS.get_ticks_msec() < until:
		yield(get_tree(), "idle_frame")
	yield(get_tree(), "idle_frame")
	return call(method)


func _online():
	return EngineBridge.is_online()


func _drained():
	return EngineBridge.pending_count() == 0


func _run():
	var result = {}
	EngineBridge.configure({"queue_size": 1000000})
	result["online"] = yield(_wait_until("_online", 15.0), "completed")
	# 1. What one call costs the game's frame: rounds of calls, the median round's cost per call.
	var per_call = []
	for r in range(CALL_ROUNDS):
		var t0 = OS.get_ticks_usec()
		for i in range(CALLS_PER_ROUND):
			EngineBridge.track_design("bench:call:cost", i)
		per_call.append(float(OS.get_ticks_usec() - t0) / CALLS_PER_ROUND)
		if r % 10 == 9:
			yield(get_tree(), "idle_frame")
	per_call.sort()
	result["calls"] = CALL_ROUNDS * CALLS_PER_ROUND
	result["call_us_median"] = per_call[per_call.size() / 2]
	result["call_us_p90"] = per_call[per_call.size() * 9 / 10]
	var drain_start = OS.get_ticks_msec()
	result["drained"] = yield(_wait_until("_drained", WAIT_S), "completed")
	result["drain_s"] = (OS.get_ticks_msec() - drain_start) / 1000.0
	# 2. Sustained: keep BACKLOG events waiting for SUSTAIN_S; count what the daemon acknowledges.
	var before = EngineBridge.get_stats()
	var start = OS.get_ticks_usec()
	var frames = 0
	var n = 0
	while OS.get_ticks_usec() - start < SUSTAIN_S * 1000000:
		while EngineBridge.pending_count() < BACKLOG:
			EngineBridge.track_design("bench:sustained", n)
			n += 1
		frames += 1
		yield(get_tree(), "idle_frame")
	var seconds = (OS.get_ticks_usec() - start) / 1000000.0
	var after = EngineBridge.get_stats()
	result["sustained_events_per_s"] = (after["acked"] - before["acked"]) / seconds
	result["sustained_fps"] = frames / seconds
	result["drained_after"] = yield(_wait_until("_drained", WAIT_S), "completed")
	var final = EngineBridge.get_stats()
	for key in ["acked", "stored", "duplicates", "rejected", "dropped", "abandoned", "resent"]:
		result[key] = final[key]
	result["generated"] = result["calls"] + n
	print("EB_BENCH ", to_json(result))
	get_tree().quit(0)
