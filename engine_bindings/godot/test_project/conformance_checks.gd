extends Reference
# The codec, the request builders and the reply readers of the addon against the shared conformance
# vectors (engine_bindings/conformance/vectors.json, written into vectors.gd by the wrapper with a
# few cases of its own), counted by the harness `t`.

const Vectors = preload("res://vectors.gd")

var t
var adapter
var codec


func _init(harness, godot_adapter, msgpack_codec):
	t = harness
	adapter = godot_adapter
	codec = msgpack_codec


func run():
	test_conformance_msgpack()
	test_conformance_requests()
	test_conformance_replies()
	test_conformance_limits()
	test_codec_extras()
	test_codec_errors()


# A vector: the writer encodes `value` to exactly `hex` (when Godot can hold the value as it is on
# the wire: no float 32, no int beyond int64), the reader decodes `hex` to `value`.
func check_codec(section, v):
	if v["encode"]:
		var encoded = codec.encode(v["value"])
		t.check(
			codec.error == "" and encoded.hex_encode() == v["hex"],
			(
				"%s %s: encodes to %s, not %s %s"
				% [
					section,
					v["name"],
					encoded.hex_encode().substr(0, 80),
					v["hex"].substr(0, 80),
					codec.error
				]
			)
		)
	var decoded = codec.decode(Vectors.from_hex(v["hex"]))
	t.check(
		codec.error == "" and t.same(decoded, v["value"]),
		"%s %s: decodes to %s (%s)" % [section, v["name"], str(decoded).substr(0, 80), codec.error]
	)
	return decoded


func test_conformance_msgpack():
	var cases = Vectors.msgpack()
	t.check(cases.size() >= 50, "the conformance msgpack section: %d vectors" % cases.size())
	for v in cases:
		check_codec("msgpack", v)


# The fields the typed helper builds from the inputs a canonical event holds (its category's
# arguments, split out of event_id), or null when the helper refuses them.
func helper_fields(rules, category, f):
	var id = str(f.get("event_id")).split(":")
	if category == "design":
		return rules.design(f.get("event_id"), f.get("value"), {})
	if category == "business":
		return rules.business(f["currency"], f["amount"], id[0], id[1], f.get("cart_type", ""), {})
	if category == "progression":
		var names = [id[1], id[2] if id.size() > 2 else "", id[3] if id.size() > 3 else ""]
		return rules.progression(id[0], names, f.get("score"), f.get("attempt_num"), {})
	if category == "resource":
		return rules.resource(id[0], id[1], f["amount"], id[2], id[3], {})
	if category == "error":
		return rules.error_event(f["severity"], f["message"], {})
	if category == "ads":
		return rules.ads(
			f["ad_action"],
			f["ad_type"],
			f["ad_sdk_name"],
			f["ad_placement"],
			f.get("ad_duration"),
			f.get("ad_fail_show_reason", ""),
			{}
		)
	if category == "impression":
		return rules.impression(
			f["ad_network_name"], f["ad_network_version"], f["impression_data"], {}
		)
	var rest = f.duplicate()
	rest.erase("name")
	return rules.custom(f.get("name"), rest)


func new_rules():
	return load(t.ADDON + "/internal/check.gd").new(adapter)


# Every request vector is written and read; the events, batch, purchase and hello are also built
# from their inputs. Not built: an event for another user (a Godot game names no other), the apple
# purchase (status and comment are no arguments of verify_purchase), the one-line session (Godot
# adds the game's `ts`), flush and configs maps, and ping and stats, which Godot never sends.
func test_conformance_requests():
	var rules = new_rules()
	var built = 0
	for v in Vectors.requests():
		var value = check_codec("requests", v)
		if typeof(value) != TYPE_DICTIONARY:
			continue
		var kind = value["type"]
		if kind == "event" and not value["event"].has("user_id"):
			var e = value["event"]
			var f = helper_fields(rules, e["category"], e["fields"])
			t.check(
				t.same(f, e["fields"]),
				(
					"the %s helper builds %s, not %s (%s)"
					% [e["category"], str(f), str(e["fields"]), rules.error]
				)
			)
			built += 1
		elif kind == "events":
			t.check(
				batch_hex(value["rid"], value["events"]) == v["hex"],
				"the batch encoder writes %s" % v["name"]
			)
			built += 1
		elif kind == "purchase" and value["store"] == "googleplay":
			var body = rules.purchase(
				value["id"],
				value["store"],
				value["receipt"],
				value["price_usd"],
				value["signature"],
				{}
			)
			body["type"] = "purchase"
			body["rid"] = value["rid"]
			t.check(t.same(body, value), "the purchase builder: %s" % str(body))
			built += 1
		elif kind == "hello":
			var hello = load(t.ADDON + "/internal/wire.gd").hello(
				{"game_build": "1.4.2", "device_id": "d-42", "user_id": "u-7"}
			)
			for key in hello:
				t.check(
					value.has(key) and typeof(value[key]) == typeof(hello[key]),
					"the hello's %s is a field of the canonical hello" % key
				)
			built += 1
	t.check(built >= 10, "builders checked against the request vectors: %d" % built)


# The frame ingress_link.gd makes of `events` with `rid`, as hex.
func batch_hex(rid, events):
	var queue = load(t.ADDON + "/internal/event_queue.gd").new()
	queue.set_capacity(events.size())
	for e in events:
		queue.push(e)
	var link = load(t.ADDON + "/internal/ingress_link.gd").new(adapter, codec, queue)
	var batch = link.take_batch(rid, OS.get_ticks_usec() + 1000000, [])
	return (
		batch[0].hex_encode()
		if batch != null and queue.size() == 0
		else "a batch of %s" % str(batch)
	)


func test_conformance_replies():
	var wire = load(t.ADDON + "/internal/wire.gd")
	var readers = 0
	for v in Vectors.replies():
		var msg = check_codec("replies", v)
		if typeof(msg) != TYPE_DICTIONARY:
			continue
		if msg["type"] == "welcome":
			t.check(
				t.same(wire.limits(msg), msg["limits"]),
				"a welcome's limits are taken: %s" % v["name"]
			)
			readers += 1
		elif msg["type"] == "ack":
			for key in ["rejected", "invalid"]:
				var read = wire.refusals(msg, key)
				t.check(
					read.size() == msg[key].size(), "every %s entry is read: %s" % [key, str(read)]
				)
				for i in range(read.size()):
					var entry = msg[key][i]
					var other = entry["code"] if key == "rejected" else entry["provider"]
					var id = entry["id"] if typeof(entry["id"]) == TYPE_STRING else ""
					var r = read[i]
					t.check(
						(
							r["id"] == id
							and r["message"] == entry["message"]
							and other == (r["code"] if key == "rejected" else r["provider"])
						),
						"%s entry %d read as %s" % [key, i, str(r)]
					)
			readers += 1
		elif msg["type"] == "error" and msg["code"] == "wrong_game":
			t.check(
				wire.other_game(msg) == msg["detail"]["game"],
				"wrong_game names the daemon's game: %s" % wire.other_game(msg)
			)
			readers += 1
	t.check(readers >= 6, "welcomes, acks and wrong_game read: %d" % readers)
	var configs = load(t.ADDON + "/internal/config_link.gd").new(adapter, codec)
	configs.set_device("d-42")
	for v in Vectors.publications():
		var publication = check_codec("publications", v)
		var reports = configs.apply_all({v["topic"]: publication})
		t.check(reports.size() == 1, "publication %s is taken: %s" % [v["name"], str(reports)])
		if v["topic"].begins_with("purchase/"):
			t.check(
				reports[0][0] == configs.VERDICTS and t.same(reports[0][1], publication["values"]),
				"the device's verdicts go to the purchases"
			)
		else:
			for key in publication["values"]:
				t.check(
					t.same(configs.store.get_value(key, null), publication["values"][key]),
					"config %s from %s" % [key, v["topic"]]
				)


# The limits a binding starts with are the protocol's; where Godot checks before sending (its
# helpers and verify_purchase), it refuses exactly the edge cases the daemon refuses.
func test_conformance_limits():
	var wire = load(t.ADDON + "/internal/wire.gd")
	t.check(
		t.same(wire.DEFAULT_LIMITS, Vectors.limit_values()),
		"the default limits are protocol.LIMITS"
	)
	var rules = new_rules()
	var judged = 0
	for v in Vectors.limit_cases():
		var value = check_codec("limits", v)
		var kind = value["type"] if typeof(value) == TYPE_DICTIONARY else ""
		var local = null
		if kind == "event" and v["helper_made"]:
			local = helper_fields(rules, value["event"]["category"], value["event"]["fields"])
		elif kind == "purchase":
			local = rules.purchase(value["id"], value["store"], value["receipt"], 0.0, "", {})
		else:
			continue
		judged += 1
		t.check(
			(local != null) == v["accepted"],
			(
				"%s: the local check %s it (%s), the daemon %s it"
				% [
					v["name"],
					"takes" if local != null else "refuses",
					rules.error,
					"takes" if v["accepted"] else "refuses"
				]
			)
		)
	t.check(judged >= 12, "edge cases judged locally: %d" % judged)
	for v in Vectors.limit_frames():
		var decoded = codec.decode(Vectors.from_hex(v["hex"]))
		var refused = codec.error != ""
		t.check(
			refused == v["refused_by_reader"],
			"frame %s: read as %s (%s)" % [v["name"], str(decoded), codec.error]
		)


# What the shared vectors leave out: the 32-bit forms (64 KiB and more) and forms Godot only reads.
func test_codec_extras():
	var cases = Vectors.cases()
	t.check(cases.size() >= 10, "at least 10 extra msgpack vectors, got %d" % cases.size())
	for c in cases:
		check_codec("extras", {"name": c[0], "hex": c[1], "value": c[2], "encode": c[3] == "both"})


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
		t.check(v == null and codec.error != "", "decode error for %s: %s" % [name, codec.error])
	var deep = PoolByteArray()
	for _i in range(100):
		deep.append(0x91)
	deep.append(0x01)
	codec.decode(deep)
	t.check(codec.error.find("nested") >= 0, "deep nesting refused: %s" % codec.error)
	for value in [Vector2(1, 2), self, [1, Rect2()], {"k": Color(1, 0, 0)}]:
		codec.encode(value)
		t.check(
			codec.error.find("cannot encode") >= 0,
			"encode refuses %s: %s" % [str(value), codec.error]
		)
	var packed = codec.encode(PoolStringArray(["a", "é"]))
	t.check(
		packed.hex_encode() == codec.encode(["a", "é"]).hex_encode(),
		"a PoolStringArray is an array"
	)
