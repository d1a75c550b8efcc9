# Checks every argument where the game passes it and builds the `fields` map of each event category
# (protocol.md section 5), so a mistake is reported at the call site, naming the argument, instead
# of as a rejected event later. The rules are those of the Unity (Runtime/Internal/Check.cs) and C++
# (src/events.cpp) bindings; the size limits are the welcome's (protocol.md section 8). Each builder
# returns the map, or null with `error` saying what is wrong.

const Wire = preload("wire.gd")

# Field names, event id parts, custom event names, ad texts, cart types.
const MAX_NAME_CHARS = 64
const MAX_RECEIPT_CHARS = 65536
const SEVERITIES = ["debug", "info", "warning", "error", "critical"]
const PROGRESSION_STATUSES = ["Start", "Fail", "Complete"]
const RESOURCE_FLOWS = ["Source", "Sink"]
const AD_ACTIONS = ["clicked", "show", "failed_show", "reward_received", "request", "loaded"]
const AD_TYPES = [
	"video", "rewarded_video", "playable", "interstitial", "offer_wall", "banner", "app_open"
]
const AD_FAIL_SHOW_REASONS = [
	"unknown", "offline", "no_fill", "internal_error", "invalid_request", "unable_to_precache"
]
# Protocol v1's first name for ad_fail_show_reason, still taken in track_ads' extra (deprecated).
const AD_FB_ERROR = "ad_fb_error"
const STORES = ["apple", "googleplay"]
const TEXT_FIELDS = ["custom_01", "custom_02", "custom_03", "cart_type", "ad_fail_show_reason"]
const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

var error = ""

var _max_fields = 0
var _max_string_chars = 0
var _max_depth = 0
var _t_float
var _t_bytes


func _init(adapter):
	var types = adapter.variant_types()
	_t_float = types["float"]
	_t_bytes = types["bytes"]
	set_limits(Wire.DEFAULT_LIMITS)


# The welcome's limits (protocol.md section 8) for the checks from now on.
func set_limits(limits):
	_max_fields = limits["max_fields"]
	_max_string_chars = limits["max_string_chars"]
	_max_depth = limits["max_depth"]


func design(event_id, value, extra):
	error = ""
	if not _parts(event_id, "event_id", 1, 5):
		return null
	var fields = {"event_id": event_id}
	if typeof(value) != TYPE_NIL:
		if not _number(value, "value"):
			return null
		fields["value"] = value
	return _with(fields, extra)


func business(currency, amount, item_type, item_id, cart_type, extra):
	error = ""
	if not (_currency(currency) and _part(item_type, "item_type") and _part(item_id, "item_id")):
		return null
	if typeof(amount) != TYPE_INT or amount < 0:
		return _fail("amount must be an int number of cents >= 0, got %s" % _show(amount))
	var fields = {"event_id": item_type + ":" + item_id, "amount": amount, "currency": currency}
	if not _optional_text(fields, "cart_type", cart_type):
		return null
	return _with(fields, extra)


func progression(status, names, score, attempt_num, extra):
	error = ""
	if not status in PROGRESSION_STATUSES:
		return _fail("status must be one of %s, got %s" % [str(PROGRESSION_STATUSES), _show(status)])
	var event_id = status
	for i in range(names.size()):
		var arg = "progression_0%d" % (i + 1)
		if typeof(names[i]) == TYPE_STRING and names[i] == "" and i > 0:
			for j in range(i + 1, names.size()):
				if typeof(names[j]) != TYPE_STRING or names[j] != "":
					return _fail("progression_0%d needs %s" % [j + 1, arg])
			break
		if not _part(names[i], arg):
			return null
		event_id += ":" + names[i]
	var fields = {"event_id": event_id}
	if not _optional_int(fields, "score", "score", score, null):
		return null
	if not _optional_int(fields, "attempt_num", "attempt_num", attempt_num, 1):
		return null
	return _with(fields, extra)


func resource(flow, currency, amount, item_type, item_id, extra):
	error = ""
	if not flow in RESOURCE_FLOWS:
		return _fail("flow must be one of %s, got %s" % [str(RESOURCE_FLOWS), _show(flow)])
	if not (_part(currency, "currency") and _part(item_type, "item_type")):
		return null
	if not (_part(item_id, "item_id") and _number(amount, "amount")):
		return null
	if amount <= 0:
		return _fail("amount must be > 0 (the flow says the direction), got %s" % str(amount))
	var event_id = "%s:%s:%s:%s" % [flow, currency, item_type, item_id]
	return _with({"event_id": event_id, "amount": amount}, extra)


func error_event(severity, message, extra):
	error = ""
	if not severity in SEVERITIES:
		return _fail("severity must be one of %s, got %s" % [str(SEVERITIES), _show(severity)])
	if not _text(message, "message", 0, _max_string_chars):
		return null
	return _with({"severity": severity, "message": message}, extra)


# fail_show_reason is "" (none) or one of AD_FAIL_SHOW_REASONS, sent as ad_fail_show_reason. An
# ad_fb_error in `extra` (its first name, deprecated) is taken as fail_show_reason.
func ads(action, ad_type, sdk_name, placement, duration_ms, fail_show_reason, extra):
	error = ""
	if not action in AD_ACTIONS:
		return _fail("action must be one of %s, got %s" % [str(AD_ACTIONS), _show(action)])
	if not ad_type in AD_TYPES:
		return _fail("ad_type must be one of %s, got %s" % [str(AD_TYPES), _show(ad_type)])
	if not _text(sdk_name, "sdk_name", 1, MAX_NAME_CHARS):
		return null
	if not _text(placement, "placement", 1, MAX_NAME_CHARS):
		return null
	var fields = {
		"ad_action": action, "ad_type": ad_type, "ad_sdk_name": sdk_name, "ad_placement": placement
	}
	if not _optional_int(fields, "ad_duration", "duration_ms", duration_ms, 0):
		return null
	var reason = fail_show_reason
	var reason_name = "fail_show_reason"
	if typeof(extra) == TYPE_DICTIONARY and extra.has(AD_FB_ERROR):
		if typeof(extra[AD_FB_ERROR]) != TYPE_NIL:
			if typeof(reason) != TYPE_STRING or reason != "":
				return _fail(
					"extra holds ad_fb_error, the deprecated name of fail_show_reason, which is given"
					+ " too: give fail_show_reason alone"
				)
			reason = extra[AD_FB_ERROR]
			reason_name = "extra.ad_fb_error (deprecated: use fail_show_reason)"
		extra = extra.duplicate()
		extra.erase(AD_FB_ERROR)
	if typeof(reason) != TYPE_STRING or (reason != "" and not reason in AD_FAIL_SHOW_REASONS):
		return _fail("%s must be \"\" or one of %s, got %s" % [
			reason_name, str(AD_FAIL_SHOW_REASONS), _show(reason)
		])
	if reason != "":
		fields["ad_fail_show_reason"] = reason
	return _with(fields, extra)


# Ad revenue: the network's name and its SDK's version (1 to 64 chars each), and its impression
# record.
func impression(ad_network_name, ad_network_version, impression_data, extra):
	error = ""
	if not _text(ad_network_name, "ad_network_name", 1, MAX_NAME_CHARS):
		return null
	if not _text(ad_network_version, "ad_network_version", 1, MAX_NAME_CHARS):
		return null
	if typeof(impression_data) != TYPE_DICTIONARY:
		return _fail("impression_data must be a Dictionary, got %s" % _show(impression_data))
	# A value inside `fields`, as those of `extra` are (section 8: on the second level of nesting).
	if not _value(impression_data, "impression_data", 1):
		return null
	var fields = {
		"ad_network_name": ad_network_name,
		"ad_network_version": ad_network_version,
		"impression_data": impression_data.duplicate(true),
	}
	return _with(fields, extra)


func custom(event_name, fields):
	error = ""
	if not _text(event_name, "name", 1, MAX_NAME_CHARS):
		return null
	return _with({"name": event_name}, fields)


# The body of a `purchase` request (protocol.md section 4.9), without type and rid.
func purchase(purchase_id, store, receipt, price_usd, signature, metadata):
	error = ""
	if not store in STORES:
		return _fail("store must be one of %s, got %s" % [str(STORES), _show(store)])
	if not (_base64(receipt, "receipt", 1) and _number(price_usd, "price_usd")):
		return null
	if price_usd < 0:
		return _fail("price_usd must be >= 0, got %s" % str(price_usd))
	if not _base64(signature, "signature", 0):
		return null
	if store == "googleplay" and signature == "":
		return _fail("signature is required for googleplay")
	if typeof(metadata) != TYPE_DICTIONARY or not _value(metadata, "metadata", 0):
		return _fail("metadata must be a Dictionary") if error == "" else null
	var body = {"id": purchase_id, "store": store, "receipt": receipt, "price_usd": float(price_usd)}
	if signature != "":
		body["signature"] = signature
	if metadata.size() > 0:
		body["metadata"] = metadata.duplicate(true)
	return body


func _fail(message):
	error = message
	return null


func _show(v):
	if typeof(v) == TYPE_STRING:
		return '"%s"' % v
	return "%s (Variant type %d)" % [str(v), typeof(v)]


# The helper's fields plus the caller's `extra` map (custom_01..03, custom_fields, anything else
# providers understand), copied deeply so a later change by the caller cannot alter the event.
func _with(fields, extra):
	if typeof(extra) != TYPE_DICTIONARY:
		return _fail("extra fields must be a Dictionary, got %s" % _show(extra))
	if extra.size() == 0:
		return fields
	if fields.size() + extra.size() > _max_fields:
		return _fail("an event holds at most %d fields" % _max_fields)
	for key in extra:
		if typeof(key) != TYPE_STRING or key.length() < 1 or key.length() > MAX_NAME_CHARS:
			return _fail("field names must be strings of 1 to %d chars, got %s" % [
				MAX_NAME_CHARS, _show(key)
			])
		if fields.has(key):
			return _fail("%s is set by the helper's own argument" % key)
		var v = extra[key]
		if key in TEXT_FIELDS and typeof(v) != TYPE_STRING:
			return _fail("%s must be a String, got %s" % [key, _show(v)])
		if key == "custom_fields" and typeof(v) != TYPE_DICTIONARY:
			return _fail("custom_fields must be a Dictionary, got %s" % _show(v))
		# `fields` is the first level of nesting (protocol.md section 8): its values are on the second.
		if not _value(v, key, 1):
			return null
	var copy = extra.duplicate(true)
	for key in copy:
		fields[key] = copy[key]
	return fields


# True when `v` is something protocol v1 can carry inside `fields`, within its limits.
func _value(v, path, depth):
	var t = typeof(v)
	if t == TYPE_NIL or t == TYPE_BOOL or t == TYPE_INT or t == _t_bytes:
		return true
	if t == _t_float:
		return _number(v, path)
	if t == TYPE_STRING:
		return _text(v, path, 0, _max_string_chars)
	if t == TYPE_ARRAY or t == TYPE_DICTIONARY:
		if depth >= _max_depth:
			_fail("%s: nested deeper than %d levels of maps and arrays" % [path, _max_depth])
			return false
		if t == TYPE_ARRAY:
			for i in range(v.size()):
				if not _value(v[i], "%s[%d]" % [path, i], depth + 1):
					return false
			return true
		if v.size() > _max_fields:
			_fail("%s: a map holds at most %d entries" % [path, _max_fields])
			return false
		for key in v:
			if typeof(key) != TYPE_STRING or key.length() < 1 or key.length() > MAX_NAME_CHARS:
				_fail("%s: keys must be strings of 1 to %d chars, got %s" % [
					path, MAX_NAME_CHARS, _show(key)
				])
				return false
			if not _value(v[key], "%s.%s" % [path, key], depth + 1):
				return false
		return true
	_fail("%s: a %s cannot be sent; use null, bool, int, float, String, bytes, Array or Dictionary" % [
		path, _show(v)
	])
	return false


func _number(v, name):
	var t = typeof(v)
	if t == TYPE_INT:
		return true
	if t != _t_float:
		_fail("%s must be an int or a float, got %s" % [name, _show(v)])
		return false
	if is_nan(v) or is_inf(v):
		_fail("%s must be finite, got %s" % [name, str(v)])
		return false
	return true


func _text(v, name, min_chars, max_chars):
	if typeof(v) != TYPE_STRING:
		_fail("%s must be a String, got %s" % [name, _show(v)])
		return false
	if v.length() < min_chars or v.length() > max_chars:
		_fail("%s must have %d to %d chars, got %d" % [name, min_chars, max_chars, v.length()])
		return false
	return true


# Standard base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4 chars), as the stores make
# receipts and signatures: anything else would only fail at the store, long after the call.
# Decoding and encoding again is native and fast (well under a millisecond for 64 KiB); on bad
# input the engine also logs its own decoding error.
func _base64(v, name, min_chars):
	if not _text(v, name, min_chars, MAX_RECEIPT_CHARS):
		return false
	if v == "":
		return true
	if v.length() % 4 != 0 or Marshalls.raw_to_base64(Marshalls.base64_to_raw(v)) != v:
		_fail("%s must be standard base64 (A-Z a-z 0-9 + /, = padding), got %s" % [
			name, _show(v.substr(0, 40))
		])
		return false
	return true


# One part of an event id: 1 to 64 chars, no ':' (which separates the parts).
func _part(v, name):
	if not _text(v, name, 1, MAX_NAME_CHARS):
		return false
	if v.find(":") >= 0:
		_fail("%s must not contain ':', got %s" % [name, _show(v)])
		return false
	return true


# An event id of `lo` to `hi` parts of 1 to MAX_NAME_CHARS chars joined by ':'.
func _parts(v, name, lo, hi):
	if not _text(v, name, 1, _max_string_chars):
		return false
	var parts = v.split(":")
	if parts.size() < lo or parts.size() > hi:
		_fail("%s must have %d to %d parts joined by ':', got %s" % [name, lo, hi, _show(v)])
		return false
	for p in parts:
		if p == "" or p.length() > MAX_NAME_CHARS:
			_fail("%s: every part must have 1 to %d chars: %s" % [name, MAX_NAME_CHARS, _show(v)])
			return false
	return true


func _currency(v):
	if typeof(v) != TYPE_STRING or v.length() != 3:
		_fail("currency must be an ISO 4217 code like \"USD\", got %s" % _show(v))
		return false
	for i in range(3):
		if UPPER.find(v[i]) < 0:
			_fail("currency must be three capital letters like \"USD\", got %s" % _show(v))
			return false
	return true


# Adds an optional int argument `name` as field `key` (null: left out), at least `minimum` unless
# that is null.
func _optional_int(fields, key, name, v, minimum):
	if typeof(v) == TYPE_NIL:
		return true
	if typeof(v) != TYPE_INT:
		_fail("%s must be an int or null, got %s" % [name, _show(v)])
		return false
	if typeof(minimum) == TYPE_INT and v < minimum:
		_fail("%s must be at least %d, got %d" % [name, minimum, v])
		return false
	fields[key] = v
	return true


# Adds an optional text argument ("": left out).
func _optional_text(fields, name, v):
	if not _text(v, name, 0, MAX_NAME_CHARS):
		return false
	if v != "":
		fields[name] = v
	return true
