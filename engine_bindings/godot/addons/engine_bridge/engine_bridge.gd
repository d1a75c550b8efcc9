# EngineBridge: the game's side of engine-bridge (protocol.md, version 1), registered as the
# autoload `EngineBridge`. Every call returns at once: events wait in a bounded queue and _process()
# moves them to the daemon over two small ZMTP connections without ever waiting for the network;
# only the end of the game waits, briefly, for what is still queued. Runs unchanged in Godot 3 and
# 4; what differs lives in godot3/adapter.gd and godot4/adapter.gd. The parts are in internal/,
# named like the Unity binding's Runtime/Internal/ (wire, queue, links, configs, purchases,
# launcher).
extends Node

# The daemon said welcome (true), or the connection to it was lost (false).
signal connection_changed(connected)
# Every change of get_connection_state(), with why (e.g. the connection error), for a status line.
signal connection_state_changed(state, detail)
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
# The daemon stored the event, but `provider` will refuse it by its own `rule` (e.g. GameAnalytics'
# event id pattern): it is dead-lettered for that provider (`engine-bridge dead-letters`).
signal provider_refused(event_id, provider, rule)
# A start_session/end_session/flush request failed, e.g. code "no_session".
signal request_failed(request_type, code, message)
# Reply to set_consent(): the player's new state (`user_id`, `analytics`, `ip_ads`).
signal consent_changed(reply)
# Reply to forget(): the player (`user_id`) and the providers with an erasure ledger entry.
signal forgotten(reply)

# Encoding time allowed per frame, so a burst of events never stalls the game.
const ENCODE_BUDGET_USEC = 4000
const DEVICE_ID_FILE = "user://engine_bridge_device_id"
const ID_PREFIX_BYTES = 8

const Settings = preload("settings.gd")
const Wire = preload("internal/wire.gd")
const Zmtp = preload("internal/zmtp.gd")
const MsgPack = preload("internal/msgpack.gd")
const Check = preload("internal/check.gd")
const EventQueue = preload("internal/event_queue.gd")
const IngressLink = preload("internal/ingress_link.gd")
const ConfigLink = preload("internal/config_link.gd")
const PurchaseVerdicts = preload("internal/purchase_verdicts.gd")
const DaemonProcess = preload("internal/daemon_process.gd")
const GameEndpoints = preload("internal/game_endpoints.gd")
const Console = preload("internal/console.gd")

# The connection states of get_connection_state() and connection_state_changed.
const STATE_CONNECTING = IngressLink.CONNECTING
const STATE_CONNECTED = IngressLink.CONNECTED
const STATE_UNREACHABLE = IngressLink.UNREACHABLE
const STATE_WRONG_PEER = IngressLink.WRONG_PEER
const STATE_REFUSED = IngressLink.REFUSED
const STATE_LAUNCH_FAILED = IngressLink.LAUNCH_FAILED

var _a
var _quit_requests = []  # the adapter's, kept: every frame's notification is compared with them
var _mp
var _check
var _queue
var _link
var _configs
var _purchases
var _launcher
var _console
var _settings = {}
var _device_id = ""
var _id_prefix = ""
var _seq = 0
var _session = null  # the open session, as the daemon last told it
var _session_open = false  # a session is open or being opened: the end of the game ends it
var _last_error = ""
var _ending = false  # shutdown() is draining
# The queue's `pushed` as of the last shutdown: each way the end shows drains only what is new.
var _drained_at = -1
var _stats = {"acked": 0, "stored": 0, "duplicates": 0, "rejected": 0, "provider_refusals": 0}


func _init():
	var major = Engine.get_version_info()["major"]
	var dir = get_script().resource_path.get_base_dir()
	_a = load("%s/godot%d/adapter.gd" % [dir, 3 if major < 4 else 4]).new()
	_a.process_always(self)
	_quit_requests = _a.quit_requests()
	_mp = MsgPack.new(_a)
	_check = Check.new(_a)
	_queue = EventQueue.new()
	_link = IngressLink.new(_a, _mp, _queue)
	_configs = ConfigLink.new(_a, _mp)
	_purchases = PurchaseVerdicts.new(_a, _mp, self)
	_launcher = DaemonProcess.new(_a)
	_console = Console.new()
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
	_apply_settings(null)


func _process(_delta):
	_tick(_a.ticks_ms(), _a.ticks_usec() + ENCODE_BUDGET_USEC)


# Every way the game ends that Godot tells about: the player's quit request, the autoload leaving
# the tree (get_tree().quit() and the end of the main loop), the node being freed.
func _notification(what):
	if _a == null:
		return
	if what in _quit_requests:
		if _a.quits_on_request(get_tree() if is_inside_tree() else null, what):
			_on_game_ending()
	elif what == NOTIFICATION_EXIT_TREE or what == NOTIFICATION_PREDELETE:
		_on_game_ending()


# --- events -------------------------------------------------------------------------------------
# Each helper returns the event's id, or "" when an argument is wrong (the reason goes to the
# Godot error log and to get_last_error()). `extra` adds fields: custom_01..custom_03 (String),
# custom_fields (Dictionary) or any field a provider understands.


# A design event: event_id is 1 to 5 parts joined by ':', e.g. "ui:click:play"; value is optional.
func track_design(event_id, value = null, extra = {}):
	return _enqueue("design", _check.design(event_id, value, extra), "track_design")


# A purchase with real money: amount in cents (>= 0), currency an ISO 4217 code such as "USD".
func track_business(currency, amount, item_type, item_id, cart_type = "", extra = {}):
	var f = _check.business(currency, amount, item_type, item_id, cart_type, extra)
	return _enqueue("business", f, "track_business")


# status is "Start", "Fail" or "Complete"; then 1 to 3 progression names (world, level, phase);
# attempt_num, when given, is at least 1.
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
	var f = _check.progression(status, names, score, attempt_num, extra)
	return _enqueue("progression", f, "track_progression")


# flow is "Source" (gained) or "Sink" (spent) of an in-game currency; amount is above 0 for both.
func track_resource(flow, currency, amount, item_type, item_id, extra = {}):
	var f = _check.resource(flow, currency, amount, item_type, item_id, extra)
	return _enqueue("resource", f, "track_resource")


# severity is "debug", "info", "warning", "error" or "critical".
func track_error(severity, message, extra = {}):
	return _enqueue("error", _check.error_event(severity, message, extra), "track_error")


# An ad event, e.g. track_ads("show", "rewarded_video", "admob", "end_of_level", 15000), or
# track_ads("failed_show", "interstitial", "admob", "level_end", null, "no_fill").
# action: clicked, show, failed_show, reward_received, request, loaded; ad_type: video,
# rewarded_video, playable, interstitial, offer_wall, banner, app_open. duration_ms (at least 0)
# is sent as ad_duration, which GameAnalytics takes on video and rewarded_video ads;
# fail_show_reason ("" or unknown, offline, no_fill, internal_error, invalid_request,
# unable_to_precache) as ad_fail_show_reason, which it takes with failed_show. That argument was
# fb_error, in the same place, so calls keep working; an ad_fb_error in extra, the reason's first
# name, is deprecated and taken as fail_show_reason.
func track_ads(
	action, ad_type, sdk_name, placement, duration_ms = null, fail_show_reason = "", extra = {}
):
	var f = _check.ads(action, ad_type, sdk_name, placement, duration_ms, fail_show_reason, extra)
	return _enqueue("ads", f, "track_ads")


# Ad revenue: an ad network's impression record as its SDK gave it (impression_data, a Dictionary:
# revenue, currency, precision, ...), with the network's name ("max", "admob", "ironsource", ...)
# and its SDK's version, 1 to 64 chars each.
func track_impression(ad_network_name, ad_network_version, impression_data, extra = {}):
	var f = _check.impression(ad_network_name, ad_network_version, impression_data, extra)
	return _enqueue("impression", f, "track_impression")


# A custom event: a name (1 to 64 chars) and any fields.
func track(event_name, fields = {}):
	return _enqueue("custom", _check.custom(event_name, fields), "track")


# --- sessions, flush, purchases ---------------------------------------------------------------
# These go out in order with the events around them; their replies arrive as signals.


func start_session():
	_queue.push({"type": "session_start", "ts": _a.unix_ms()})
	_session_open = true


func end_session():
	_queue.push({"type": "session_end", "ts": _a.unix_ms()})
	_session_open = false


# The player's consent (protocol.md section 4.10), in order with the events around it: `analytics`
# (anything of the player leaving the machine) and `ip_ads` (their IP address and advertising ids),
# each "granted", "denied" or "" (unchanged); `user_id` "" is the hello user (a dedicated server
# names its player). The reply comes as consent_changed. Returns false (and says why) for bad
# arguments.
func set_consent(analytics = "", ip_ads = "", user_id = ""):
	var msg = {"type": "consent"}
	for purpose in [["analytics", analytics], ["ip_ads", ip_ads]]:
		if purpose[1] == "":
			continue
		if not purpose[1] in ["granted", "denied"]:
			push_error("engine_bridge.set_consent: %s must be \"granted\", \"denied\" or \"\"" % purpose[0])
			return false
		msg[purpose[0]] = purpose[1]
	if msg.size() == 1:
		push_error("engine_bridge.set_consent: give analytics, ip_ads or both")
		return false
	if user_id != "":
		msg["user_id"] = user_id
	_queue.push(msg)
	return true


# Erases the player at the daemon ("delete my data", protocol.md section 4.11); the reply comes as
# forgotten. `user_id` "" is the hello user.
func forget(user_id = ""):
	_queue.push({"type": "forget", "user_id": user_id} if user_id != "" else {"type": "forget"})


# Asks the daemon to hand this device's events to the providers now.
func flush():
	_queue.push({"type": "flush"})


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
	var body = _check.purchase(_next_id(), store, receipt, price_usd, signature, metadata)
	if body == null:
		return _refuse("verify_purchase", _check.error)
	body["type"] = "purchase"
	_purchases.add(body, callback)
	_queue.push(body)
	return body["id"]


# Ends this game's use of the daemon now: ends the session that is open or being opened, asks for a
# flush, and waits at most `timeout_ms` (default: the quit_drain_ms setting) for the daemon to
# acknowledge everything queued; then closes the connections. Returns true when nothing was left
# unacknowledged. It runs by itself when the game ends in a way Godot tells about (README,
# "Quitting"); call it before ending the game any other way. A call after it starts the bridge
# again.
func shutdown(timeout_ms = -1):
	if _ending:
		return false  # called from a signal this shutdown emits: the outer call goes on draining
	var budget = _settings["quit_drain_ms"] if timeout_ms < 0 else timeout_ms
	if _session_open:
		end_session()
	if pending_count() > 0:
		flush()
	_drained_at = _queue.pushed
	var now = _a.ticks_ms()
	var until = now + budget
	_ending = true
	_link.hurry(now, until)
	# The only wait in the addon: the game is closing anyway (protocol.md section 10).
	while pending_count() > 0 and now < until:
		_tick(now, _a.ticks_usec() + (until - now) * 1000)
		OS.delay_usec(1000)
		now = _a.ticks_ms()
	_ending = false
	for r in _link.close("shut down", now):
		_on_link(r, now)
	_configs.close("shut down")
	_launcher.stop()
	return pending_count() == 0


# --- configs --------------------------------------------------------------------------------------


# A config value: config/local wins over this device's GameRamp config, which wins over
# GameAnalytics; default_value when no topic has the key.
func get_config(key, default_value = null):
	return _configs.store.get_value(key, default_value)


# Every effective config, key -> value.
func get_configs():
	return _configs.store.snapshot()


# --- state and settings ---------------------------------------------------------------------------


# True while the daemon has welcomed this client.
func is_online():
	return _link.is_up()


# STATE_CONNECTING, STATE_CONNECTED, STATE_UNREACHABLE (nothing listens at the endpoint),
# STATE_WRONG_PEER (another program holds the port, or another game's daemon: wrong_game),
# STATE_REFUSED (the daemon refused this client) or STATE_LAUNCH_FAILED (auto_launch could not
# start the daemon); get_last_error() says why.
func get_connection_state():
	return _link.state


# Events and requests not yet acknowledged: queued plus in flight.
func pending_count():
	return _queue.size() + _link.pending()


# The latest problem: a refused call or setting, the daemon being absent (cleared when it welcomes
# this client), a refusal by the daemon.
func get_last_error():
	return _last_error


func get_stats():
	var out = _stats.duplicate()
	for source in [_link.stats, _link.connection_stats()]:
		for key in source:
			out[key] = source[key]
	out["dropped"] = _queue.dropped
	out["abandoned"] = _queue.abandoned
	out["queued"] = _queue.size()
	out["pending"] = pending_count()
	out["online"] = is_online()
	out["state"] = _link.state
	out["limits"] = _link.limits.duplicate()
	out["device_id"] = _device_id
	out["purchases_awaiting"] = _purchases.awaiting_count()
	out["session_id"] = _session["session_id"] if typeof(_session) == TYPE_DICTIONARY else ""
	out["daemon_pid"] = _launcher.pid
	out["game"] = _settings["game"]
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
	_apply_settings(old)
	return true


# --- internals ----------------------------------------------------------------------------------


func _refuse(caller, message):
	_last_error = "EngineBridge.%s: %s" % [caller, message]
	push_error(_last_error)
	return ""


func _next_id():
	_seq += 1
	return _id_prefix + str(_seq)


func _enqueue(category, fields, caller):
	if fields == null:
		return _refuse(caller, _check.error)
	var id = _next_id()
	_queue.push({"id": id, "category": category, "ts": _a.unix_ms(), "fields": fields})
	return id


func _on_game_ending():
	if _drained_at != _queue.pushed:
		shutdown()
	_launcher.stop()  # also one launched after the last shutdown()


# [key, what is wrong] for the first bad setting in `s`, or [] when all are good.
func _settings_problem(s):
	for item in Settings.ITEMS:
		var key = item["key"]
		var t = typeof(s[key])
		var iterable = typeof(item["default"]) == TYPE_ARRAY and t in _mp.list_types()
		if t != typeof(item["default"]) and not iterable:
			return [key, "%s must be of the type of %s, got %s" % [key, str(item["default"]), str(s[key])]]
	if s["game"] != "" and not GameEndpoints.valid(s["game"]):
		return [
			"game",
			"game %s must be 1-32 characters of a-z 0-9 _ -, starting with a letter or digit" % s["game"]
		]
	for key in ["ingress_endpoint", "configs_endpoint"]:
		var problem = Zmtp.parse_endpoint(s[key])["error"] if s[key] != "" else ""
		if problem != "":
			return [key, "%s: %s" % [key, problem]]
	if s["queue_size"] < 1:
		return ["queue_size", "queue_size must be at least 1, got %d" % s["queue_size"]]
	for key in ["quit_drain_ms", "warning_interval_ms"]:
		if s[key] < 0:
			return [key, "%s must be at least 0, got %d" % [key, s[key]]]
	if s["game_build"].length() > 32:
		return ["game_build", "game_build must have at most 32 chars: %s" % s["game_build"]]
	for key in ["device_id", "user_id"]:
		if s[key].length() > 128:
			return [key, "%s must have at most 128 chars" % key]
	return []


# Puts valid settings (checked by _settings_problem) into force; `old` is null at the start.
func _apply_settings(old):
	var s = _settings
	_queue.set_capacity(s["queue_size"])
	_console.interval_ms = s["warning_interval_ms"]
	var game_build = s["game_build"]
	if game_build == "" and ProjectSettings.has_setting("application/config/version"):
		game_build = str(ProjectSettings.get_setting("application/config/version")).substr(0, 32)
	var device_id = s["device_id"] if s["device_id"] != "" else _stored_device_id()
	_link.identity = {
		"game_build": game_build if game_build != "" else "0.0.0",
		"device_id": device_id,
		"user_id": s["user_id"],
		"game": s["game"],
	}
	if device_id != _device_id:
		_device_id = device_id
		_configs.set_device(device_id)
		for body in _purchases.load_for(device_id):
			_queue.push(body)
	var endpoints = _endpoints(s)
	if old == null or _endpoints(old)[1] != endpoints[1]:
		_configs.set_endpoint(endpoints[1])
	if old == null:
		_link.set_endpoint(endpoints[0])
		return
	var reconnect = _endpoints(old)[0] != endpoints[0]
	for key in ["game", "game_build", "device_id", "user_id"]:
		reconnect = reconnect or old[key] != s[key]
	if reconnect:
		# A new connection says hello with the new identity (and may succeed where one failed).
		_link.set_endpoint(endpoints[0])
		var now = _a.ticks_ms()
		for r in _link.close("settings changed", now):
			_on_link(r, now)


# [ingress, configs] in force with settings `s`: those set, else the game's own (section 1).
func _endpoints(s):
	var defaults = GameEndpoints.defaults(s["game"], _a)
	return [
		s["ingress_endpoint"] if s["ingress_endpoint"] != "" else defaults[0],
		s["configs_endpoint"] if s["configs_endpoint"] != "" else defaults[1],
	]


# A random id made on the first run and kept in user://, so it is stable for this install.
func _stored_device_id():
	var known = _a.read_text(DEVICE_ID_FILE).strip_edges()
	if known != "":
		return known
	var made = "godot-" + Crypto.new().generate_random_bytes(16).hex_encode()
	if _a.write_text(DEVICE_ID_FILE, made) != OK:
		push_warning("EngineBridge: cannot save the device id in %s" % DEVICE_ID_FILE)
	return made


func _tick(now, encode_until):
	for r in _link.poll(now, encode_until):
		_on_link(r, now)
	for r in _configs.poll(now):
		_on_configs(r)
	_console.tick(now)
	if _settings["auto_launch"] and not _ending and _link.nobody_answers():
		var s = _settings
		var endpoints = _endpoints(s)
		var path = DaemonProcess.resolve(s["daemon_executable"], s["daemon_base_dir"])
		var args = DaemonProcess.command(
			s["daemon_arguments"], endpoints[0], endpoints[1], s["game"]
		)
		var pid = _launcher.maybe_launch(now, path, args)
		if pid > 0:
			_link.expect_daemon(now, DaemonProcess.STARTUP_GRACE_MS)
		elif pid < 0:
			for r in _link.launch_failed(_launcher.error):
				_on_link(r, now)


func _on_link(r, now):
	var kind = r[0]
	if kind == IngressLink.R_WELCOME:
		_on_welcome(r[1], now)
	elif kind == IngressLink.R_REPLY:
		_on_reply(r[1], r[2], r[3], now)
	elif kind == IngressLink.R_FAILED:
		_on_failed(r[1], r[2], r[3], r[4], now)
	elif kind == IngressLink.R_STATE:
		_on_state(r[1], r[2], r[3])
	elif kind == IngressLink.R_UNSENDABLE:
		_stats["rejected"] += 1
		_console.warn("rejected", "event %s cannot be sent: %s" % [r[1]["id"], r[2]], now)
		emit_signal("event_rejected", r[1]["id"], "too_large", r[2])


func _on_welcome(msg, now):
	_check.set_limits(_link.limits)
	if typeof(msg.get("topics")) == TYPE_ARRAY:
		_configs.subscribe(msg["topics"])
	_session = msg.get("session") if typeof(msg.get("session")) == TYPE_DICTIONARY else null
	_session_open = _session_open or _session != null
	_launcher.on_connected()
	_last_error = ""
	_link.request({"type": "configs", "prefix": "config/"}, "configs", [], now)


func _on_state(state, detail, previous):
	emit_signal("connection_state_changed", state, detail)
	var endpoint = _endpoints(_settings)[0]
	if state == STATE_CONNECTED or previous == STATE_CONNECTED:
		emit_signal("connection_changed", state == STATE_CONNECTED)
	if state == STATE_UNREACHABLE:
		_absent(
			(
				"no engine-bridge daemon answers at %s (%s). Events wait in memory, up to queue_size"
				+ " (%d), until one does: start it (engine-bridge run) or turn on"
				+ " engine_bridge/daemon/auto_launch."
			)
			% [endpoint, detail, _settings["queue_size"]]
		)
	elif state == STATE_WRONG_PEER and _link.other_game != "":
		_absent(
			(
				"the daemon at %s serves another game, not %s (%s). This game sends it nothing and"
				+ " asks again every few seconds: check engine_bridge/identity/game and the endpoints."
			)
			% [endpoint, _settings["game"], detail]
		)
	elif state == STATE_WRONG_PEER:
		_absent(
			(
				"%s belongs to another program, not an engine-bridge daemon (%s). Point"
				+ " engine_bridge/connection/ingress_endpoint at the daemon, or free that port."
			)
			% [endpoint, detail]
		)
	elif state == STATE_REFUSED:
		_refuse("hello", detail)
	elif state == STATE_LAUNCH_FAILED:
		_refuse("auto_launch", detail)


# Said once per outage, in the console and in get_last_error().
func _absent(text):
	_last_error = "EngineBridge: " + text
	push_warning(_last_error)


func _on_reply(kind, items, msg, now):
	if kind == "events":
		_on_ack(items, msg, now)
	elif kind == "configs":
		if typeof(msg.get("topics")) == TYPE_DICTIONARY:
			for r in _configs.apply_all(msg["topics"]):
				_on_configs(r)
	elif kind in Wire.HOLD_BACK:
		var open = typeof(msg.get("ended_at")) == TYPE_NIL
		_session = msg if open else null
		_session_open = open
		emit_signal("session_started" if open else "session_ended", msg)
	elif kind == "flush":
		emit_signal("flushed", msg.get("queued"))
	elif kind == "consent":
		emit_signal("consent_changed", msg)
	elif kind == "forget":
		emit_signal("forgotten", msg)
	elif kind == "purchase":
		_purchases.on_reply(items[0]["id"], msg)


func _on_ack(items, msg, now):
	_stats["acked"] += items.size()
	for key in ["stored", "duplicates"]:
		if typeof(msg.get(key)) == TYPE_INT:
			_stats[key] += msg[key]
	# An event of a user without an open session opens one (protocol.md section 4.4).
	_session_open = _session_open or (typeof(msg.get("stored")) == TYPE_INT and msg["stored"] > 0)
	for r in Wire.refusals(msg, "rejected"):
		_stats["rejected"] += 1
		_console.warn("rejected", "the daemon refused event %s: %s %s" % [
			r["id"], r["code"], r["message"]
		], now)
		emit_signal("event_rejected", r["id"], r["code"], r["message"])
	for r in Wire.refusals(msg, "invalid"):
		_stats["provider_refusals"] += 1
		var text = (
			"%s refuses event %s: %s. The daemon stored it and keeps it as a dead letter for %s"
			+ " (engine-bridge dead-letters); fix the call that made it."
		)
		_console.warn("invalid", text % [r["provider"], r["id"], r["message"], r["provider"]], now)
		emit_signal("provider_refused", r["id"], r["provider"], r["message"])


func _on_failed(kind, items, code, message, now):
	if kind == "events":
		_stats["rejected"] += items.size()
		_refuse("events", "the daemon refused a batch (%s): %s" % [code, message])
		for item in items:
			emit_signal("event_rejected", item["id"], code, message)
	elif kind == "purchase":
		_purchases.on_error(items[0]["id"], code, message)
	elif kind == "configs":
		return
	elif kind == "session_end" and code == "no_session" and _ending:
		_session_open = false  # the end of the game ended a session the daemon had already closed
	else:
		if kind == "session_end" and code == "no_session":
			_session_open = false
		_console.warn("failed", "%s failed (%s): %s" % [kind, code, message], now)
		emit_signal("request_failed", kind, code, message)


func _on_configs(r):
	if r[0] == ConfigLink.VERDICTS:
		_purchases.on_publication(r[1])
		return
	for change in r[1]:
		emit_signal("config_changed", change[0], change[1])
	emit_signal("configs_updated", r[2])
