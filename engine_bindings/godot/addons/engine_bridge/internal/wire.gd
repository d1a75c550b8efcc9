# Protocol v1 (protocol.md) as this binding speaks it, each name and figure spelled once: the limits
# a `welcome` replaces, how each request kind is ordered among the events, the hello, and readers of
# the reply fields the other files branch on. Unity's twin is Runtime/Internal/Wire.cs.

const PROTOCOL_VERSION = 1
const BINDING = "engine-bridge-godot"
const BINDING_VERSION = "0.2.0"

# protocol.md section 8: in force until a welcome brings the daemon's own figures.
const DEFAULT_LIMITS = {
	"max_message_bytes": 262144,
	"max_batch_events": 1000,
	"max_event_id_chars": 64,
	"max_fields": 64,
	"max_string_chars": 8192,
	"max_depth": 4,
}

# A request without a reply after this long goes again (section 3).
const REQUEST_TIMEOUT_MS = 10000
# Requests sent only once every event queued before them is acknowledged.
const AFTER_ACKS = ["session_start", "session_end", "flush"]
# Of those, the ones that also hold back what follows until their reply: a resent session_start
# would open another session, a resent session_end would get no_session (section 3).
const HOLD_BACK = ["session_start", "session_end"]
# Error codes after which nothing was stored: the request goes again a little later.
const RETRY_CODES = ["unavailable", "internal"]
const RETRY_AFTER_ERROR_MS = 1000

const PLATFORMS = {
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


# Items of the queue that are events have no "type"; requests (sessions, flush, purchases) do.
static func is_event(item):
	return not item.has("type")


# The hello map (section 4.1) for `identity` {game_build, device_id, user_id ("" for the device's)}.
static func hello(identity):
	var msg = {
		"type": "hello",
		"protocol": PROTOCOL_VERSION,
		"engine": "godot",
		"engine_version": str(Engine.get_version_info()["string"]).substr(0, 64),
		"binding": BINDING,
		"binding_version": BINDING_VERSION,
		"game_build": identity["game_build"],
		"device_id": identity["device_id"],
		"platform": PLATFORMS.get(OS.get_name(), OS.get_name().to_lower().substr(0, 32)),
		"device": OS.get_model_name().substr(0, 64),
	}
	if identity["user_id"] != "":
		msg["user_id"] = identity["user_id"]
	if identity.get("game", "") != "":
		msg["game"] = identity["game"]
	return msg


# The game a wrong_game error names as the daemon's (its detail's `game`), or "?".
static func other_game(error):
	var detail = error.get("detail")
	if typeof(detail) == TYPE_DICTIONARY and typeof(detail.get("game")) == TYPE_STRING:
		return detail["game"]
	return "?"


# The limits a welcome carries, each positive int replacing its default; the rest keep theirs.
static func limits(welcome):
	var out = DEFAULT_LIMITS.duplicate()
	var given = welcome.get("limits")
	if typeof(given) == TYPE_DICTIONARY:
		for key in out:
			if typeof(given.get(key)) == TYPE_INT and given[key] > 0:
				out[key] = given[key]
	return out


# An ack's `rejected` or `invalid` entries (section 4.3) as maps whose every field is a String
# ("" when absent): id and message, plus code (rejected) or provider (invalid).
static func refusals(ack, key):
	var out = []
	var entries = ack.get(key)
	if typeof(entries) != TYPE_ARRAY:
		return out
	for entry in entries:
		if typeof(entry) == TYPE_DICTIONARY:
			var item = {}
			for field in ["id", "code", "provider", "message"]:
				var v = entry.get(field)
				item[field] = v if typeof(v) == TYPE_STRING else ""
			out.append(item)
	return out
