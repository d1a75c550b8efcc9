# The binding's warnings in Godot's own console (push_warning), at most one of each kind (provider
# refusals, rejected events, failed requests) per `interval_ms`: the first at once, the ones after
# it summed up in one warning when the interval is over, so a call made every frame cannot flood
# the console; the signals and get_stats() still count every one. Unity's twin is
# Runtime/Internal/ProviderRefusals.cs, C++'s src/internal/console.cpp.

var interval_ms = 10000

var _kinds = {}  # kind -> {at: ticks ms of its last warning, held: how many since, latest: message}


# `message` without the "EngineBridge: " prefix.
func warn(kind, message, now):
	var k = _kinds.get(kind)
	if k == null:
		k = {"at": 0, "held": 0, "latest": ""}
		_kinds[kind] = k
	elif now - k["at"] < interval_ms:
		k["held"] += 1
		k["latest"] = message
		return
	_show(k, message, now)


# At every frame: once an interval is over, the warning that sums up what it held back.
func tick(now):
	for kind in _kinds:
		var k = _kinds[kind]
		if k["held"] > 0 and now - k["at"] >= interval_ms:
			var text = "%d more like this since the last warning (get_stats() counts them all)"
			_show(k, (text + "; the latest: %s") % [k["held"], k["latest"]], now)


func _show(k, message, now):
	push_warning("EngineBridge: " + message)
	k["at"] = now
	k["held"] = 0
	k["latest"] = ""
