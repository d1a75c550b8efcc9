# The remote configs the daemon publishes (protocol.md section 7): the newest publication of each
# topic that concerns this device, and the one effective key -> value view the game reads, in which
# config/local beats this device's GameRamp topic, which beats config/gameanalytics.

var _order  # config topics, highest precedence first
var _publications = {}  # topic -> its newest publication map
var _snapshot = {}


func _init(device_id):
	_order = ["config/local", "config/gameramp/" + device_id, "config/gameanalytics"]


# Takes one publication. Returns null when it changes nothing (another device's topic, a malformed
# map, or a version already seen: a publication can arrive twice); otherwise the [key, value] pairs
# whose effective value changed, value null for a key that disappeared (possibly none).
func apply(topic, publication):
	if not topic in _order or typeof(publication) != TYPE_DICTIONARY:
		return null
	var version = publication.get("version")
	if typeof(version) != TYPE_INT or typeof(publication.get("values")) != TYPE_DICTIONARY:
		return null
	var old = _publications.get(topic)
	if typeof(old) == TYPE_DICTIONARY and version <= old["version"]:
		return null
	_publications[topic] = publication
	var merged = {}
	for i in range(_order.size() - 1, -1, -1):
		var p = _publications.get(_order[i])
		if typeof(p) == TYPE_DICTIONARY:
			var values = p["values"]
			for key in values:
				merged[key] = values[key]
	var changes = []
	for key in merged:
		if not _snapshot.has(key) or not _same(_snapshot[key], merged[key]):
			changes.append([key, merged[key]])
	for key in _snapshot:
		if not merged.has(key):
			changes.append([key, null])
	_snapshot = merged
	return changes


func get_value(key, default_value):
	return _snapshot.get(key, default_value)


# A copy of the effective view, so a caller cannot change the store by accident.
func snapshot():
	return _snapshot.duplicate(true)


# Deep equality that also tells 1 from 1.0 (Godot 3 compares dictionaries by reference).
static func _same(a, b):
	if typeof(a) != typeof(b):
		return false
	if typeof(a) == TYPE_DICTIONARY or typeof(a) == TYPE_ARRAY:
		return hash(a) == hash(b)
	return a == b
