# EngineBridge: the game's side of engine-bridge (protocol.md, version 1), registered as the
# autoload `EngineBridge` by the editor plugin. Every call returns at once: events wait in a bounded
# queue and _process() moves them to the daemon over two small ZMTP connections without ever
# waiting for the network. Runs unchanged in Godot 3 and 4; what differs lives in the adapters
# godot3/adapter.gd and godot4/adapter.gd.
extends Node

# The daemon said welcome (true), or the connection to it was lost (false).
signal connection_changed(connected)
# A config key's effective value changed (null: the key is gone). See protocol.md section 7.
signal config_changed(key, value)
# The effective configs after any new publication, as a key -> value Dictionary.
signal configs_updated(snapshot)
# Replies to start_session() and end_session(): the daemon's `session` map.
signal session_started(session)
signal session_ended(session)
# Reply to flush(): this device's events not yet delivered to every provider.
signal flushed(queued)
# A purchase verdict no verify_purchase() callback took: a purchase made without a callback (or
# whose callback's object is gone), or one made by an earlier run that quit before its verdict came.
# Once per purchase id, ever: the ids handled are kept in user://. `result` as for the callback.
signal purchase_verified(purchase_id, result)
# The daemon refused one event (the event is not stored and is not sent again).
signal event_rejected(event_id, code, message)
# A start_session/end_session/flush request failed, e.g. code "no_session".
signal request_failed(request_type, code, message)

const BINDING = "engine-bridge-godot"
const BINDING_VERSION = "0.1.0"
const PROTOCOL_VERSION = 1
const REQUEST_TIMEOUT_MS = 10000
const RETRY_AFTER_ERROR_MS = 1000
# Batches in flight at once: enough to keep the daemon busy, few enough to resend cheaply.
const MAX_IN_FLIGHT = 4
# Encoding time allowed per frame, so a burst of events never stalls the game.
const ENCODE_BUDGET_USEC = 4000
const DEVICE_ID_FILE = "user://engine_bridge_device_id"
# Per device: the purchases without a verdict (sent again at the next start, so a purchase is not
# lost when the game quits before the daemon has it) and the ids of the last HANDLED_KEPT verdicts
# given to the game (the daemon repeats its last 50 at every start: none may be granted twice).
const PURCHASES_FILE = "user://engine_bridge_purchases_%s"
const HANDLED_KEPT = 200
# Requests that go out only once everything before them is acknowledged, and hold back what
# follows until their reply (protocol.md section 3: session_start and session_end are not resent).
const BARRIER_KINDS = ["session_start", "session_end", "flush"]
const ID_PREFIX_BYTES = 8

const Settings = preload("settings.gd")
const MsgPack = preload("msgpack.gd")
const Zmtp = preload("zmtp.gd")
const EventFields = preload("event_fields.gd")
const ConfigStore = preload("config_store.gd")

const LINK_DOWN = 0  # no ZMTP connection
const LINK_HELLO = 1  # connected, hello sent, waiting for welcome
const LINK_UP = 2  # welcomed: requests flow

var _a
var _mp
var _fields
var _configs
var _ingress
var _sub
var _settings = {}
var _device_id = ""
var _user_id = ""
var _game_build = ""
var _link = LINK_DOWN
var _halted = false  # the daemon refused our hello: retrying would fail the same way
var _limits = {"max_message_bytes": 262144, "max_batch_events": 1000}
var _topics = []  # config topic prefixes to subscribe to
var _purchase_topic = ""
# Purchases without a result yet: id -> {body (the request map), callback (or null)}.
var _awaiting = {}
# Purchase ids whose verdict the game has had; _handled_order: oldest first.
var _handled = {}
var _handled_order = []
# The outgoing queue: a ring buffer of events and control requests (maps with a "type").
var _queue = []
var _q_head = 0
var _q_count = 0
# Requests awaiting their reply: rid -> {kind, items, frame, sent}; _order keeps send order.
var _inflight = {}
var _order = []
var _barrier = false  # a control request is in flight; nothing else goes out until its reply
var _paused_until = 0
var _next_rid = 0
var _id_prefix = ""
var _seq = 0
var _session = null
var _launched = false
var _last_error = ""
var _stats = {
	"sent": 0,
	"acked": 0,
	"stored": 0,
	"duplicates": 0,
	"rejected": 0,
	"dropped": 0,
	"resent": 0,
	"welcomes": 0,
	"daemon_pid": 0,  # the process auto_launch started, if it did
}


func _init():
	var major = Engine.get_version_info()["major"]
	var dir = get_script().resource_path.get_base_dir()
	_a = load("%s/godot%d/adapter.gd" % [dir, 3 if major < 4 else 4]).new()
	_a.process_always(self)
	_mp = MsgPack.new(_a)
	_fields = EventFields.new(_a)
	_ingress = Zmtp.new(_a, "DEALER")
	_sub = Zmtp.new(_a, "SUB")
	_id_prefix = Crypto.new().generate_random_bytes(ID_PREFIX_BYTES).hex_encode() + "-"
	var defaults = {}
	for item in Settings.ITEMS:
		defaults[item["key"]] = item["default"]
		_settings[item["key"]] = item["default"]
		if ProjectSettings.has_setting(item["name"]):
			_settings[item["key"]] = ProjectSettings.get_setting(item["name"])
	# A bad Project Setting is reported and replaced by its default; the defaults are all valid.
	var problem = _settings_problem(_settings)
	while problem.size() > 0:
		_refuse("settings", problem[1])
		_settings[problem[0]] = defaults[problem[0]]
		problem = _settings_problem(_settings)
	_apply_settings()


func _process(_delta):
	_tick(_a.ticks_ms())


func _notification(what):
	if _a != null and what == _a.quit_notification():
		_drain_before_quit()


# --- events -------------------------------------------------------------------------------------
# Each helper returns the event's id, or "" when an argument is wrong (the reason goes to the
# Godot error log and to get_last_error()). `extra` adds fields: custom_01..custom_03 (String),
# custom_fields (Dictionary) or any field a provider understands.


# A design event: event_id is 1 to 5 parts joined by ':', e.g. "ui:click:play"; value is optional.
func track_design(event_id, value = null, extra = {}):
	return _enqueue("design", _fields.design(event_id, value, extra), "track_design")


# A purchase with real money: amount in cents, currency an ISO 4217 code such as "USD".
func track_business(currency, amount, item_type, item_id, cart_type = "", extra = {}):
	var f = _fields.business(currency, amount, item_type, item_id, cart_type, extra)
	return _enqueue("business", f, "track_business")


# status is "Start", "Fail" or "Complete"; then 1 to 3 progression names (world, level, phase).
func track_progression(
	status,
	progression_01,
	progression_02 = "",
	progression_03 = "",
	score = null,
	attempt_num = null,
	extra = {}
):
	var names = [progression_01, progression_02, progression_03]
	var f = _fields.progression(status, names, score, attempt_num, extra)
	return _enqueue("progression", f, "track_progression")


# flow is "Source" (gained) or "Sink" (spent) of an in-game currency.
func track_resource(flow, currency, amount, item_type, item_id, extra = {}):
	var f = _fields.resource(flow, currency, amount, item_type, item_id, extra)
	return _enqueue("resource", f, "track_resource")


# severity is "debug", "info", "warning", "error" or "critical".
func track_error(severity, message, extra = {}):
	return _enqueue("error", _fields.error_event(severity, message, extra), "track_error")


# An ad event, e.g. track_ads("show", "rewarded_video", "admob", "end_of_level", 15000).
func track_ads(action, ad_type, sdk_name, placement, duration_ms = null, fb_error = "", extra = {}):
	var f = _fields.ads(action, ad_type, sdk_name, placement, duration_ms, fb_error, extra)
	return _enqueue("ads", f, "track_ads")


# A custom event: a name (1 to 64 chars) and any fields.
func track(event_name, fields = {}):
	return _enqueue("custom", _fields.custom(event_name, fields), "track")


# --- sessions, flush, purchases ---------------------------------------------------------------
# These go out in order with the events around them; their replies arrive as signals.


func start_session():
	_q_push({"type": "session_start", "ts": _a.unix_ms()})


func end_session():
	_q_push({"type": "session_end", "ts": _a.unix_ms()})


# Asks the daemon to hand this device's events to the providers now (e.g. before quitting).
func flush():
	_q_push({"type": "flush"})


# Sends a store receipt (base64) for verification through the daemon. `callback` (a FuncRef in
# Godot 3, a Callable in Godot 4, or null) is called once, from _process, as
# callback(purchase_id, result): as soon as the verdict is known, even if that is long after the
# daemon's reply said "pending" (staq unreachable). Without a callback the result goes to the
# purchase_verified signal. `result` always has is_valid, is_duplicate (a replayed receipt),
# reason, store, metadata (as given here), and error and message ("" unless the daemon refused
# the request, e.g. error "not_configured"). Grant the item when is_valid and not is_duplicate.
# The purchase is saved in user:// until its verdict comes: one the game quits before is sent
# again at the next start, its verdict then going to purchase_verified.
# Returns the purchase id, or "" when an argument is wrong.
func verify_purchase(
	store, receipt, callback = null, price_usd = 0.0, signature = "", metadata = {}
):
	if typeof(callback) != TYPE_NIL and not _a.is_callback(callback):
		return _refuse("verify_purchase", "callback must be a %s or null, got %s" % [
			_a.callback_type_name(), str(callback)
		])
	_seq += 1
	var purchase_id = _id_prefix + str(_seq)
	var body = _fields.purchase(purchase_id, store, receipt, price_usd, signature, metadata)
	if body == null:
		return _refuse("verify_purchase", _fields.error)
	body["type"] = "purchase"
	_awaiting[purchase_id] = {"body": body, "callback": callback}
	_save_purchases()
	_q_push(body)
	return purchase_id


# --- configs --------------------------------------------------------------------------------------


# A config value: config/local wins over this device's GameRamp config, which wins over
# GameAnalytics; default_value when no topic has the key.
func get_config(key, default_value = null):
	return _configs.get_value(key, default_value)


# Every effective config, key -> value.
func get_configs():
	return _configs.snapshot()


# --- state and settings ---------------------------------------------------------------------------


# True while the daemon has welcomed this client.
func is_online():
	return _link == LINK_UP


# Events and requests not yet acknowledged: queued plus in flight.
func pending_count():
	var n = _q_count
	for rid in _order:
		n += _inflight[rid]["items"].size()
	return n


func get_last_error():
	return _last_error


func get_stats():
	var out = _stats.duplicate()
	out["queued"] = _q_count
	out["pending"] = pending_count()
	out["online"] = is_online()
	out["device_id"] = _device_id
	out["purchases_awaiting"] = _awaiting.size()
	out["session_id"] = _session["session_id"] if typeof(_session) == TYPE_DICTIONARY else ""
	out["connects"] = _ingress.stats["connects"]
	out["connect_failures"] = _ingress.stats["failures"]
	out["pings_received"] = _ingress.stats["pings_received"]
	out["pongs_received"] = _ingress.stats["pongs_received"]
	out["connection_error"] = _ingress.last_error
	return out


# Overrides settings at run time, by the short keys of settings.gd (e.g. {"queue_size": 500,
# "ingress_endpoint": "tcp://127.0.0.1:6000"}); changed endpoints reconnect. Returns false and
# changes nothing, with the reason in the error log, on an unknown key or a bad value.
func configure(overrides):
	if typeof(overrides) != TYPE_DICTIONARY:
		_refuse("configure", "overrides must be a Dictionary")
		return false
	var candidate = _settings.duplicate()
	for key in overrides:
		if not _settings.has(key):
			_refuse("configure", "unknown setting %s; known: %s" % [str(key), str(_settings.keys())])
			return false
		candidate[key] = overrides[key]
	var problem = _settings_problem(candidate)
	if problem.size() > 0:
		_refuse("configure", problem[1])
		return false
	var old = _settings
	_settings = candidate
	_apply_settings()
	var reconnect = false
	for key in ["ingress_endpoint", "game_build", "device_id", "user_id"]:
		reconnect = reconnect or old[key] != _settings[key]
	if reconnect:
		# A new connection says hello with the new identity (and may succeed where one failed).
		_halted = false
		_ingress.close("settings changed")
		_on_link_lost()
	if old["configs_endpoint"] != _settings["configs_endpoint"]:
		_sub.close("endpoint changed")
	return true


# --- internals ----------------------------------------------------------------------------------


func _refuse(caller, message):
	_last_error = "EngineBridge.%s: %s" % [caller, message]
	push_error(_last_error)
	return ""


func _enqueue(category, fields, caller):
	if fields == null:
		return _refuse(caller, _fields.error)
	_seq += 1
	var id = _id_prefix + str(_seq)
	_q_push({"id": id, "category": category, "ts": _a.unix_ms(), "fields": fields})
	return id


# [key, what is wrong] for the first bad setting in `s`, or [] when all are good.
func _settings_problem(s):
	for item in Settings.ITEMS:
		var key = item["key"]
		var t = typeof(s[key])
		var iterable = typeof(item["default"]) == TYPE_ARRAY and t in _mp.list_types()
		if t != typeof(item["default"]) and not iterable:
			return [key, "%s must be of the type of %s, got %s" % [key, str(item["default"]), str(s[key])]]
	for key in ["ingress_endpoint", "configs_endpoint"]:
		var problem = Zmtp.parse_endpoint(s[key])["error"]
		if problem != "":
			return [key, "%s: %s" % [key, problem]]
	if s["queue_size"] < 1:
		return ["queue_size", "queue_size must be at least 1, got %d" % s["queue_size"]]
	if s["game_build"].length() > 32:
		return ["game_build", "game_build must have at most 32 chars: %s" % s["game_build"]]
	for key in ["device_id", "user_id"]:
		if s[key].length() > 128:
			return [key, "%s must have at most 128 chars" % key]
	return []


# Puts valid settings (checked by _settings_problem) into force.
func _apply_settings():
	var s = _settings
	_ingress.set_endpoint(s["ingress_endpoint"])
	_sub.set_endpoint(s["configs_endpoint"])
	_resize_queue(s["queue_size"])
	_game_build = s["game_build"]
	if _game_build == "" and ProjectSettings.has_setting("application/config/version"):
		_game_build = str(ProjectSettings.get_setting("application/config/version")).substr(0, 32)
	if _game_build == "":
		_game_build = "0.0.0"
	_device_id = s["device_id"] if s["device_id"] != "" else _stored_device_id()
	_user_id = s["user_id"]
	if _purchase_topic != "purchase/" + _device_id:
		# A new device id: its own GameRamp and purchase topics, configs received again.
		_purchase_topic = "purchase/" + _device_id
		_load_purchases()
		_topics = ["config/", _purchase_topic]
		_configs = ConfigStore.new(_device_id)
		_sub.close("device id changed")


# A random id made on the first run and kept in user://, so it is stable for this install.
func _stored_device_id():
	var known = _a.read_text(DEVICE_ID_FILE).strip_edges()
	if known != "":
		return known
	var made = "godot-" + Crypto.new().generate_random_bytes(16).hex_encode()
	if _a.write_text(DEVICE_ID_FILE, made) != OK:
		push_warning("EngineBridge: cannot save the device id in %s" % DEVICE_ID_FILE)
	return made


func _tick(now):
	if not _halted:
		for ev in _ingress.poll(now):
			_on_ingress(ev, now)
	for ev in _sub.poll(now):
		_on_sub(ev)
	if _link != LINK_DOWN:
		_resend_late(now)
	if _link == LINK_UP:
		_pump(now)
	for ev in _ingress.write_now(now):
		_on_ingress(ev, now)
	for ev in _sub.write_now(now):
		_on_sub(ev)
	if _settings["auto_launch"] and not _launched and _ingress.stats["failures"] > 0:
		if _ingress.stats["connects"] == 0:
			_launch_daemon()


func _launch_daemon():
	_launched = true
	var args = []
	for arg in _settings["daemon_arguments"]:
		args.append(str(arg))
	args += ["--ingress", _settings["ingress_endpoint"], "--publish", _settings["configs_endpoint"]]
	var pid = _a.start_process(_settings["daemon_executable"], args)
	_stats["daemon_pid"] = pid
	if pid <= 0:
		_refuse("auto_launch", "could not start %s" % _settings["daemon_executable"])
	else:
		print("EngineBridge: started the daemon (pid %d): %s %s" % [
			pid, _settings["daemon_executable"], str(args)
		])


func _on_ingress(ev, now):
	if ev[0] == Zmtp.EV_READY:
		_link = LINK_HELLO
		_send_hello(now)
	elif ev[0] == Zmtp.EV_MESSAGE:
		var frames = ev[1]
		var msg = _mp.decode(frames[frames.size() - 1])
		if typeof(msg) != TYPE_DICTIONARY:
			push_warning("EngineBridge: unreadable reply from the daemon: %s" % _mp.error)
			return
		_on_reply(msg, now)
	elif ev[0] == Zmtp.EV_CLOSED:
		_on_link_lost()


func _on_sub(ev):
	if ev[0] == Zmtp.EV_READY:
		for prefix in _topics:
			_sub.subscribe(prefix)
	elif ev[0] == Zmtp.EV_MESSAGE and ev[1].size() == 2:
		var topic = ev[1][0].get_string_from_utf8()
		var publication = _mp.decode(ev[1][1])
		if typeof(publication) == TYPE_DICTIONARY:
			_on_publication(topic, publication)


func _on_publication(topic, publication):
	if topic == _purchase_topic:
		_on_purchase_publication(publication)
		return
	var changes = _configs.apply(topic, publication)
	if changes == null:
		return
	for change in changes:
		emit_signal("config_changed", change[0], change[1])
	emit_signal("configs_updated", _configs.snapshot())


# Verdicts pushed on purchase/<device_id>: `values` maps the device's recent purchase ids to
# {is_valid, is_duplicate, reason, store, verified_at}. Each arrives many times (every publication
# repeats them all); only one the game has not had yet is delivered.
func _on_purchase_publication(publication):
	var values = publication.get("values")
	if typeof(values) != TYPE_DICTIONARY:
		return
	for purchase_id in values:
		var v = values[purchase_id]
		if _handled.has(purchase_id) or typeof(v) != TYPE_DICTIONARY:
			continue
		if typeof(v.get("is_valid")) == TYPE_BOOL:
			_deliver(purchase_id, v, "", "")


# Gives a purchase its result, once: to the callback of the verify_purchase() call that made it,
# else (no callback, its object freed, or a purchase of an earlier run) to purchase_verified.
# `verdict` is a `purchase` reply or a topic value; `code` and `message` an error reply's.
func _deliver(purchase_id, verdict, code, message):
	var own = _awaiting.get(purchase_id, {"body": {}, "callback": null})
	var body = own["body"]
	var reason = verdict.get("reason")
	var result = {
		"is_valid": typeof(verdict.get("is_valid")) == TYPE_BOOL and verdict["is_valid"],
		"is_duplicate": typeof(verdict.get("is_duplicate")) == TYPE_BOOL and verdict["is_duplicate"],
		"reason": reason if typeof(reason) == TYPE_STRING else "",
		"store": body.get("store", verdict.get("store", "")),
		"metadata": body.get("metadata", {}).duplicate(true),
		"error": code,
		"message": message,
	}
	_awaiting.erase(purchase_id)
	if code == "":
		_handled[purchase_id] = true
		_handled_order.append(purchase_id)
		while _handled_order.size() > HANDLED_KEPT:
			_handled.erase(_handled_order.pop_front())
	_save_purchases()
	if typeof(own["callback"]) != TYPE_NIL and _a.call_back(own["callback"], [purchase_id, result]):
		return
	emit_signal("purchase_verified", purchase_id, result)


func _purchases_file():
	return PURCHASES_FILE % _device_id.md5_text()


# Takes up what an earlier run left for this device: the ids handled, and the purchases still
# without a verdict, queued again with their ids (the daemon stores a purchase once).
func _load_purchases():
	_awaiting = {}
	_handled = {}
	_handled_order = []
	var text = _a.read_text(_purchases_file())
	if text == "":
		return
	var saved = _mp.decode(Marshalls.base64_to_raw(text))
	if typeof(saved) != TYPE_DICTIONARY or typeof(saved.get("handled")) != TYPE_ARRAY:
		push_warning("EngineBridge: %s is unreadable (%s)" % [_purchases_file(), _mp.error])
		return
	for purchase_id in saved["handled"]:
		_handled[purchase_id] = true
		_handled_order.append(purchase_id)
	for body in saved.get("awaiting", []):
		if typeof(body) == TYPE_DICTIONARY and typeof(body.get("id")) == TYPE_STRING:
			_awaiting[body["id"]] = {"body": body, "callback": null}
			_q_push(body)


# Saved at once, at each purchase and each result (a small file, rarely written), so a crash
# neither loses a purchase nor lets a verdict be granted twice.
func _save_purchases():
	var awaiting = []
	for purchase_id in _awaiting:
		awaiting.append(_awaiting[purchase_id]["body"])
	var data = _mp.encode({"handled": _handled_order, "awaiting": awaiting})
	if _a.write_text(_purchases_file(), Marshalls.raw_to_base64(data)) != OK:
		push_warning("EngineBridge: cannot save the purchases in %s" % _purchases_file())


func _on_link_lost():
	var was_up = _link == LINK_UP
	_link = LINK_DOWN
	_requeue_inflight()
	if was_up:
		emit_signal("connection_changed", false)


# Puts every unacknowledged event and control request back at the front of the queue, in their
# original order, to go out again with the same ids (the daemon deduplicates them).
func _requeue_inflight():
	for i in range(_order.size() - 1, -1, -1):
		var items = _inflight[_order[i]]["items"]
		for j in range(items.size() - 1, -1, -1):
			_q_push_front(items[j])
	_inflight.clear()
	_order.clear()
	_barrier = false


func _send_hello(now):
	var msg = {
		"type": "hello",
		"protocol": PROTOCOL_VERSION,
		"engine": "godot",
		"engine_version": str(Engine.get_version_info()["string"]).substr(0, 64),
		"binding": BINDING,
		"binding_version": BINDING_VERSION,
		"game_build": _game_build,
		"device_id": _device_id,
		"platform": _platform(),
		"device": OS.get_model_name().substr(0, 64),
	}
	if _user_id != "":
		msg["user_id"] = _user_id
	_request(msg, "hello", [], now)


static func _platform():
	var names = {
		"X11": "linux",
		"Server": "linux",
		"LinuxBSD": "linux",
		"Linux": "linux",
		"Windows": "windows",
		"UWP": "windows",
		"OSX": "mac_osx",
		"macOS": "mac_osx",
		"Android": "android",
		"iOS": "ios",
		"HTML5": "webgl",
		"Web": "webgl",
	}
	return names.get(OS.get_name(), OS.get_name().to_lower().substr(0, 32))


# Sends one request map now; its reply is matched by rid. `items` are what a loss would requeue.
func _request(msg, kind, items, now):
	var rid = _new_rid()
	msg["rid"] = rid
	var frame = _mp.encode(msg)
	_transmit(rid, kind, items, frame, now)


func _transmit(rid, kind, items, frame, now):
	_inflight[rid] = {"kind": kind, "items": items, "frame": frame, "sent": now}
	_order.append(rid)
	_ingress.send([frame])


func _new_rid():
	_next_rid = (_next_rid + 1) & 0xffffffff
	while _inflight.has(_next_rid):
		_next_rid = (_next_rid + 1) & 0xffffffff
	return _next_rid


# A request without a reply after REQUEST_TIMEOUT_MS goes again, same rid, same bytes.
func _resend_late(now):
	for rid in _order:
		var rec = _inflight[rid]
		if now - rec["sent"] > REQUEST_TIMEOUT_MS:
			rec["sent"] = now
			_stats["resent"] += rec["items"].size()
			_ingress.send([rec["frame"]])


# Moves queued items out in queue order: events in batches, requests one by one.
func _pump(now):
	if now < _paused_until:
		return
	var deadline = _a.ticks_usec() + ENCODE_BUDGET_USEC
	while not _barrier and _q_count > 0 and _order.size() < MAX_IN_FLIGHT:
		var item = _queue[_q_head]
		if not item.has("type"):
			if not _send_batch(now, deadline):
				return
			continue
		# A barrier request waits for the events before it and holds back those after it. A purchase
		# does neither: its reply can take 5 s, and a resent purchase is the same purchase.
		var barrier = item["type"] in BARRIER_KINDS
		if barrier and _order.size() > 0:
			return
		_q_pop()
		_barrier = barrier
		_request(item.duplicate(), item["type"], [item], now)


# One `events` request from the front of the queue: up to max_batch_events and
# max_message_bytes, stopping at a control request or when the frame's time budget is spent.
func _send_batch(now, deadline):
	var rid = _new_rid()
	var max_bytes = _limits["max_message_bytes"]
	var max_events = min(_limits["max_batch_events"], 65535)
	_mp.begin()
	_mp.put_map_header(3)
	_mp.put("type")
	_mp.put("events")
	_mp.put("rid")
	_mp.put(rid)
	_mp.put("events")
	var count_at = _mp.size()
	_mp.put_array16_header()
	var items = []
	while _q_count > 0 and items.size() < max_events:
		var item = _queue[_q_head]
		if item.has("type"):
			break
		var before = _mp.size()
		_mp.put(item)
		if _mp.size() > max_bytes or _mp.error != "":
			_mp.rewind(before)
			if items.size() > 0 and _mp.error == "":
				break
			_q_pop()
			var why = _mp.error if _mp.error != "" else "over %d bytes" % max_bytes
			_mp.error = ""
			_stats["rejected"] += 1
			push_error("EngineBridge: event %s cannot be sent: %s" % [item["id"], why])
			emit_signal("event_rejected", item["id"], "too_large", why)
			continue
		_q_pop()
		items.append(item)
		if items.size() % 64 == 0 and _a.ticks_usec() > deadline:
			break
	if items.size() == 0:
		return false
	_mp.patch_array16_header(count_at, items.size())
	_stats["sent"] += items.size()
	_transmit(rid, "events", items, _mp.take(), now)
	return true


func _forget(rid):
	_inflight.erase(rid)
	_order.erase(rid)


func _on_reply(msg, now):
	var rid = msg.get("rid")
	if typeof(rid) != TYPE_INT or not _inflight.has(rid):
		return  # the second reply to a request sent twice
	var rec = _inflight[rid]
	_forget(rid)
	var kind = rec["kind"]
	if kind in BARRIER_KINDS:
		_barrier = false
	if msg.get("type") == "error":
		_on_error_reply(rec, msg, now)
	elif kind == "events":
		_on_ack(rec["items"], msg)
	elif kind == "hello":
		_on_welcome(msg, now)
	elif kind == "configs":
		var topics = msg.get("topics")
		if typeof(topics) == TYPE_DICTIONARY:
			for topic in topics:
				_on_publication(topic, topics[topic])
	elif kind == "session_start" or kind == "session_end":
		var open = typeof(msg.get("ended_at")) == TYPE_NIL
		_session = msg if open else null
		emit_signal("session_started" if open else "session_ended", msg)
	elif kind == "flush":
		emit_signal("flushed", msg.get("queued"))
	elif kind == "purchase":
		_on_purchase_reply(rec["items"][0]["id"], msg)


# "verified" carries the verdict; "pending" means it will come on the purchase topic.
func _on_purchase_reply(purchase_id, msg):
	if _awaiting.has(purchase_id) and msg.get("state") == "verified":
		_deliver(purchase_id, msg, "", "")


func _on_welcome(msg, now):
	_link = LINK_UP
	_stats["welcomes"] += 1
	var limits = msg.get("limits")
	if typeof(limits) == TYPE_DICTIONARY:
		for key in _limits:
			if typeof(limits.get(key)) == TYPE_INT and limits[key] > 0:
				_limits[key] = limits[key]
	var topics = msg.get("topics")
	if typeof(topics) == TYPE_ARRAY:
		for topic in topics:
			if typeof(topic) == TYPE_STRING and not topic in _topics:
				_topics.append(topic)
				_sub.subscribe(topic)
	_session = msg.get("session") if typeof(msg.get("session")) == TYPE_DICTIONARY else null
	emit_signal("connection_changed", true)
	_request({"type": "configs", "prefix": "config/"}, "configs", [], now)


func _on_ack(items, msg):
	_stats["acked"] += items.size()
	for key in ["stored", "duplicates"]:
		if typeof(msg.get(key)) == TYPE_INT:
			_stats[key] += msg[key]
	var rejected = msg.get("rejected")
	if typeof(rejected) != TYPE_ARRAY:
		return
	_stats["rejected"] += rejected.size()
	for r in rejected:
		if typeof(r) == TYPE_DICTIONARY:
			var text = "EngineBridge: the daemon refused event %s: %s %s" % [
				str(r.get("id")), str(r.get("code")), str(r.get("message"))
			]
			push_warning(text)
			emit_signal("event_rejected", r.get("id"), r.get("code"), r.get("message"))


func _on_error_reply(rec, msg, now):
	var code = str(msg.get("code"))
	var message = str(msg.get("message"))
	var kind = rec["kind"]
	if code == "hello_required":
		# The daemon forgot this connection: say hello again, then everything goes again.
		_link = LINK_HELLO
		_requeue_inflight()
		_push_front_all(rec["items"])
		_send_hello(now)
	elif code == "unavailable" or code == "internal":
		_push_front_all(rec["items"])
		_paused_until = now + RETRY_AFTER_ERROR_MS
	elif kind == "hello":
		_halted = true
		_ingress.close("hello refused")
		_link = LINK_DOWN
		_refuse("hello", "the daemon refused this client (%s): %s" % [code, message])
	elif kind == "events":
		_stats["rejected"] += rec["items"].size()
		_refuse("events", "the daemon refused a batch (%s): %s" % [code, message])
		for item in rec["items"]:
			emit_signal("event_rejected", item["id"], code, message)
	elif kind == "purchase":
		var purchase_id = rec["items"][0]["id"]
		if _awaiting.has(purchase_id):
			_deliver(purchase_id, {}, code, message)
	elif kind != "configs":
		push_warning("EngineBridge: %s failed (%s): %s" % [kind, code, message])
		emit_signal("request_failed", kind, code, message)


func _push_front_all(items):
	for j in range(items.size() - 1, -1, -1):
		_q_push_front(items[j])


# At quit, give the daemon a brief chance (quit_drain_ms) to acknowledge what is queued: the only
# place this binding waits, because the game is closing anyway (protocol.md section 10).
func _drain_before_quit():
	var budget = _settings["quit_drain_ms"]
	if budget <= 0 or pending_count() == 0:
		return
	if typeof(_session) == TYPE_DICTIONARY:
		end_session()
	flush()
	var until = _a.ticks_ms() + budget
	while pending_count() > 0 and _a.ticks_ms() < until:
		_tick(_a.ticks_ms())
		OS.delay_usec(1000)


# --- the queue: a ring buffer, so a full queue drops its oldest item in O(1) ----------------------


func _resize_queue(capacity):
	var items = []
	for i in range(_q_count):
		items.append(_queue[(_q_head + i) % _queue.size()])
	_queue = []
	_queue.resize(capacity)
	_q_head = 0
	_q_count = 0
	for item in items:
		_q_push(item)


func _q_push(item):
	var cap = _queue.size()
	if _q_count == cap:
		_queue[_q_head] = null
		_q_head = (_q_head + 1) % cap
		_q_count -= 1
		_stats["dropped"] += 1
	_queue[(_q_head + _q_count) % cap] = item
	_q_count += 1


# Items going back to the front are the oldest: with the queue full, they are the ones dropped.
func _q_push_front(item):
	var cap = _queue.size()
	if _q_count == cap:
		_stats["dropped"] += 1
		return
	_q_head = (_q_head - 1 + cap) % cap
	_queue[_q_head] = item
	_q_count += 1


func _q_pop():
	_queue[_q_head] = null
	_q_head = (_q_head + 1) % _queue.size()
	_q_count -= 1
