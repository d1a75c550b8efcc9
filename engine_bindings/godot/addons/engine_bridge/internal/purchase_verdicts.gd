# Takes purchase verdicts to the game (protocol.md 4.9 and 7), once per purchase: to the callback of
# the verify_purchase() call that made it, else (no callback, its object freed, or a purchase of an
# earlier run) to the bridge's purchase_verified signal. What awaits a verdict and the ids already
# told are saved per device in user://, so a quit neither loses a purchase nor grants one twice.
# Unity's twin is Runtime/Internal/PurchaseVerdicts.cs.

const FILE = "user://engine_bridge_purchases_%s"
# The daemon repeats a device's last 50 verdicts to every new subscriber: remember more than that.
const HANDLED_KEPT = 200

var _a
var _mp
var _owner  # the bridge node, whose purchase_verified signal gets the verdicts no callback took
var _path = ""
# Purchases without a result yet: id -> {body (the request map), callback (or null)}.
var _awaiting = {}
# Purchase ids whose verdict the game has had; _handled_order: oldest first.
var _handled = {}
var _handled_order = []


func _init(adapter, codec, owner):
	_a = adapter
	_mp = codec
	_owner = owner


func awaiting_count():
	return _awaiting.size()


# Takes up what an earlier run left for `device_id`; returns the purchases still without a verdict,
# to be queued again with their ids (the daemon stores a purchase once).
func load_for(device_id):
	_path = FILE % device_id.md5_text()
	_awaiting = {}
	_handled = {}
	_handled_order = []
	var text = _a.read_text(_path)
	if text == "":
		return []
	var saved = _mp.decode(Marshalls.base64_to_raw(text))
	if typeof(saved) != TYPE_DICTIONARY or typeof(saved.get("handled")) != TYPE_ARRAY:
		push_warning("EngineBridge: %s is unreadable (%s)" % [_path, _mp.error])
		return []
	for purchase_id in saved["handled"]:
		_handled[purchase_id] = true
		_handled_order.append(purchase_id)
	var bodies = []
	for body in saved.get("awaiting", []):
		if typeof(body) == TYPE_DICTIONARY and typeof(body.get("id")) == TYPE_STRING:
			_awaiting[body["id"]] = {"body": body, "callback": null}
			bodies.append(body)
	return bodies


func add(body, callback):
	_awaiting[body["id"]] = {"body": body, "callback": callback}
	_save()


# A `purchase` reply: "verified" carries the verdict; "pending" means it comes on the topic.
func on_reply(purchase_id, msg):
	if _awaiting.has(purchase_id) and msg.get("state") == "verified":
		_deliver(purchase_id, msg, "", "")


# An error reply (e.g. not_configured): the purchase's result, not a verdict.
func on_error(purchase_id, code, message):
	if _awaiting.has(purchase_id):
		_deliver(purchase_id, {}, code, message)


# The values of purchase/<device_id>: the device's recent purchase ids -> {is_valid, is_duplicate,
# reason, store, verified_at}. Every publication repeats them all; only new ones are told.
func on_publication(values):
	for purchase_id in values:
		var v = values[purchase_id]
		if not _handled.has(purchase_id) and typeof(v) == TYPE_DICTIONARY:
			if typeof(v.get("is_valid")) == TYPE_BOOL:
				_deliver(purchase_id, v, "", "")


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
	# Saved before the game's code runs: at most once, never twice (README, Purchases).
	_save()
	if typeof(own["callback"]) != TYPE_NIL and _a.call_back(own["callback"], [purchase_id, result]):
		return
	_owner.emit_signal("purchase_verified", purchase_id, result)


# Saved at once, at each purchase and each result (a small file, rarely written), so a crash
# neither loses a purchase nor lets a verdict be granted twice.
func _save():
	var awaiting = []
	for purchase_id in _awaiting:
		awaiting.append(_awaiting[purchase_id]["body"])
	var data = _mp.encode({"handled": _handled_order, "awaiting": awaiting})
	if _a.write_text(_path, Marshalls.raw_to_base64(data)) != OK:
		push_warning("EngineBridge: cannot save the purchases in %s" % _path)
