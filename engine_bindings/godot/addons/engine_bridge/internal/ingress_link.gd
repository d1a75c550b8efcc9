# The DEALER side of the ingress socket (protocol.md sections 3, 4 and 10): says hello on every
# connection, sends the queued events in `events` batches with several in flight, sends the queued
# session, flush and purchase requests in their place in the stream, and after a drop, a
# hello_required or a timeout sends again whatever was not answered. It tells the bridge what to act
# on, and when the daemon is absent or the port belongs to another program. Unity's twin is
# Runtime/Internal/IngressLink.cs.

const Wire = preload("wire.gd")
const Zmtp = preload("zmtp.gd")

# Batches of events in flight at once: enough to keep the daemon busy, few enough to resend cheaply.
const MAX_BATCHES = 4
# Failing to connect for this long means no daemon is there (the game is told, once per outage).
const ABSENT_AFTER_MS = 3000

# What poll() and close() report, as [kind, ...] arrays.
const R_WELCOME = 0  # [R_WELCOME, welcome map]
const R_REPLY = 1  # [R_REPLY, request kind, items, reply map]
const R_FAILED = 2  # [R_FAILED, request kind, items, code, message]: an error reply
const R_STATE = 3  # [R_STATE, state, detail, previous state]: the connection state changed
const R_UNSENDABLE = 4  # [R_UNSENDABLE, event, why]: no frame can carry it; it is dropped

# Connection states.
const CONNECTING = "connecting"  # at start, and after a connection was lost
const CONNECTED = "connected"  # welcomed
const UNREACHABLE = "unreachable"  # nothing answers at the endpoint
const WRONG_PEER = "wrong_peer"  # something answers, but it is no engine-bridge daemon
const REFUSED = "refused"  # the daemon refused the hello; no retry until the settings change
const LAUNCH_FAILED = "launch_failed"  # auto_launch could not start the daemon; tried again later
# Another game's daemon (wrong_game) is asked again this often: this game's own may take over.
const WRONG_GAME_RETRY_MS = 5000

const LINK_DOWN = 0  # no ZMTP connection
const LINK_HELLO = 1  # connected, hello sent, waiting for welcome
const LINK_UP = 2  # welcomed: requests flow

# {game_build, device_id, user_id, game} for the hello.
var identity = {}
# The game of the daemon that refused this one's hello (wrong_game), "" if none did.
var other_game = ""
var limits = Wire.DEFAULT_LIMITS.duplicate()
var state = CONNECTING
var stats = {"sent": 0, "resent": 0, "welcomes": 0}

var _a
var _mp
var _queue
var _zmtp
var _link = LINK_DOWN
var _halted = false
var _inflight = {}  # rid -> {kind, items, frame, sent}
var _order = []  # rids in send order: what a lost connection puts back, in this order
var _batches = 0  # `events` requests in flight
var _held = false  # a session request is in flight: nothing goes out until its reply
var _paused_until = 0
var _next_rid = 0
var _absent_at = -1  # when failing to connect means no daemon is there; -1: not yet polled
var _hello_at = 0


func _init(adapter, codec, queue):
	_a = adapter
	_mp = codec
	_queue = queue
	_zmtp = Zmtp.new(adapter, "DEALER")


func set_endpoint(endpoint):
	_zmtp.set_endpoint(endpoint)


func is_up():
	return _link == LINK_UP


# Events and requests sent and not yet answered.
func pending():
	var n = 0
	for rid in _order:
		n += _inflight[rid]["items"].size()
	return n


# True while the last attempt found nothing listening: a daemon to launch would help.
func nobody_answers():
	return _link == LINK_DOWN and not _halted and _zmtp.failure == Zmtp.FAIL_NOBODY


func connection_stats():
	var z = _zmtp.stats
	return {
		"connects": z["connects"],
		"connect_failures": z["failures"],
		"pings_received": z["pings_received"],
		"pongs_received": z["pongs_received"],
		"connection_error": _zmtp.last_error,
	}


# The daemon could not be launched: the state says so (not "unreachable") until one answers.
func launch_failed(detail):
	var reports = []
	_set_state(LAUNCH_FAILED, detail, reports)
	return reports


# A daemon was just started: connect as soon as it listens, and give it `grace_ms` to do so before
# it counts as absent.
func expect_daemon(now, grace_ms):
	_absent_at = max(_absent_at, now + grace_ms)
	_zmtp.hurry(now, now + grace_ms)


# No more waiting for the backoff until `until`: the game is ending.
func hurry(now, until):
	_zmtp.hurry(now, until)


# Drops the connection on purpose (new identity or endpoint, or the game ending); what was in flight
# goes back to the queue, and the next poll() connects again, its outcome judged afresh. Returns
# reports like poll().
func close(reason, now):
	var reports = []
	_halted = false
	other_game = ""
	_zmtp.close(reason)
	_lost(reason, now, reports)
	_absent_at = now + ABSENT_AFTER_MS
	_set_state(CONNECTING, reason, reports)
	return reports


# Does what is ready: connection, replies, resends, sending from the queue (encoding until the
# ticks_usec `encode_until`). Returns the reports, oldest first.
func poll(now, encode_until):
	var reports = []
	if _absent_at < 0:
		_absent_at = now + ABSENT_AFTER_MS
	if not _halted:
		for ev in _zmtp.poll(now):
			_on_zmtp(ev, now, reports)
	if _link != LINK_DOWN:
		_resend_late(now)
	if _link == LINK_UP and now >= _paused_until:
		_pump(now, encode_until, reports)
	for ev in _zmtp.write_now(now):
		_on_zmtp(ev, now, reports)
	_watch(now, reports)
	return reports


# Sends one request map now; its reply is matched by rid. `items` are what a loss puts back.
func request(msg, kind, items, now):
	var rid = _new_rid()
	msg["rid"] = rid
	_transmit(rid, kind, items, _mp.encode(msg), now)


func _on_zmtp(ev, now, reports):
	if ev[0] == Zmtp.EV_READY:
		_say_hello(now)
	elif ev[0] == Zmtp.EV_MESSAGE:
		var frames = ev[1]
		var msg = _mp.decode(frames[frames.size() - 1])
		if typeof(msg) != TYPE_DICTIONARY:
			push_warning("EngineBridge: unreadable reply from the daemon: %s" % _mp.error)
			return
		_on_reply(msg, now, reports)
	elif ev[0] == Zmtp.EV_CLOSED:
		_lost(ev[1], now, reports)


func _say_hello(now):
	_link = LINK_HELLO
	_hello_at = now
	request(Wire.hello(identity), "hello", [], now)


func _lost(reason, now, reports):
	var was_up = _link == LINK_UP
	_link = LINK_DOWN
	_requeue_inflight()
	if was_up:
		_absent_at = now + ABSENT_AFTER_MS
		_set_state(CONNECTING, reason, reports)


# Tells when the daemon is not there, or something else holds its port: once per state, per outage.
func _watch(now, reports):
	if _link == LINK_UP or _halted:
		return
	if _zmtp.failure == Zmtp.FAIL_FOREIGN:
		other_game = ""
		_set_state(WRONG_PEER, _zmtp.last_error, reports)
	elif _link == LINK_HELLO and now - _hello_at >= Wire.REQUEST_TIMEOUT_MS:
		_set_state(WRONG_PEER, "it speaks ZMTP but does not answer hello", reports)
	elif _zmtp.failure == Zmtp.FAIL_NOBODY and now >= _absent_at and state != LAUNCH_FAILED:
		_set_state(UNREACHABLE, _zmtp.last_error, reports)


func _set_state(new_state, detail, reports):
	if new_state != state:
		reports.append([R_STATE, new_state, detail, state])
		state = new_state


# Puts every unanswered event and request back at the front of the queue, in their original order,
# to go out again with the same ids (the daemon deduplicates them).
func _requeue_inflight():
	for i in range(_order.size() - 1, -1, -1):
		var items = _inflight[_order[i]]["items"]
		for j in range(items.size() - 1, -1, -1):
			_queue.push_front_sent(items[j])
	_inflight.clear()
	_order.clear()
	_batches = 0
	_held = false


func _new_rid():
	_next_rid = (_next_rid + 1) & 0xffffffff
	while _inflight.has(_next_rid):
		_next_rid = (_next_rid + 1) & 0xffffffff
	return _next_rid


func _transmit(rid, kind, items, frame, now):
	_inflight[rid] = {"kind": kind, "items": items, "frame": frame, "sent": now}
	_order.append(rid)
	if kind == "events":
		_batches += 1
	_zmtp.send([frame])


func _forget(rid):
	if _inflight[rid]["kind"] == "events":
		_batches -= 1
	_inflight.erase(rid)
	_order.erase(rid)


# A request without a reply after REQUEST_TIMEOUT_MS goes again, same rid, same bytes.
func _resend_late(now):
	for rid in _order:
		var rec = _inflight[rid]
		if now - rec["sent"] >= Wire.REQUEST_TIMEOUT_MS:
			rec["sent"] = now
			stats["resent"] += rec["items"].size()
			_zmtp.send([rec["frame"]])


# Moves queued items out in queue order: events in batches, requests one by one.
func _pump(now, encode_until, reports):
	while not _held and _queue.size() > 0:
		var item = _queue.peek()
		if Wire.is_event(item):
			if _batches >= MAX_BATCHES or not _send_batch(now, encode_until, reports):
				return
			continue
		# Sessions and flush wait for the events before them; a purchase waits for nothing, since
		# its reply can take 5 s and a resent purchase is the same purchase.
		var kind = item["type"]
		if kind in Wire.AFTER_ACKS and _batches > 0:
			return
		_queue.pop()
		_held = kind in Wire.HOLD_BACK
		request(item.duplicate(), kind, [item], now)


func _send_batch(now, deadline, reports):
	var rid = _new_rid()
	var batch = take_batch(rid, deadline, reports)
	if batch == null:
		return false
	stats["sent"] += batch[1].size()
	_transmit(rid, "events", batch[1], batch[0], now)
	return true


# One `events` request with `rid` from the front of the queue: up to max_batch_events and
# max_message_bytes, stopping at a request or once `deadline` (ticks_usec) has passed. Returns
# [frame, events], or null when no event went in.
func take_batch(rid, deadline, reports):
	var max_bytes = limits["max_message_bytes"]
	var max_events = min(limits["max_batch_events"], 65535)
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
	while _queue.size() > 0 and items.size() < max_events:
		var item = _queue.peek()
		if not Wire.is_event(item):
			break
		var before = _mp.size()
		_mp.put(item)
		if _mp.size() > max_bytes or _mp.error != "":
			_mp.rewind(before)
			if items.size() > 0 and _mp.error == "":
				break
			_queue.pop()
			var why = _mp.error if _mp.error != "" else "over %d bytes" % max_bytes
			reports.append([R_UNSENDABLE, item, why])
			_mp.error = ""
			continue
		items.append(_queue.pop())
		if items.size() % 64 == 0 and _a.ticks_usec() > deadline:
			break
	if items.size() == 0:
		return null
	_mp.patch_array_header(count_at, items.size())
	return [_mp.take(), items]


func _on_reply(msg, now, reports):
	var rid = msg.get("rid")
	if typeof(rid) != TYPE_INT or not _inflight.has(rid):
		return  # the second reply to a request sent twice
	var rec = _inflight[rid]
	var error = msg.get("code") if msg.get("type") == "error" else null
	if error in Wire.RETRY_CODES:
		# Nothing was stored: the same bytes go again after a pause, and nothing new meanwhile.
		rec["sent"] = now - Wire.REQUEST_TIMEOUT_MS + Wire.RETRY_AFTER_ERROR_MS
		_paused_until = now + Wire.RETRY_AFTER_ERROR_MS
		return
	if error == "hello_required":
		# The daemon forgot this connection: hello again, then everything goes again, in order.
		_requeue_inflight()
		_say_hello(now)
		return
	_forget(rid)
	var kind = rec["kind"]
	if kind in Wire.HOLD_BACK:
		_held = false
	if error != null:
		_on_error(kind, rec["items"], msg, reports, now)
	elif kind == "hello":
		_link = LINK_UP
		stats["welcomes"] += 1
		limits = Wire.limits(msg)
		other_game = ""
		reports.append([R_WELCOME, msg])
		_set_state(CONNECTED, "", reports)
	else:
		reports.append([R_REPLY, kind, rec["items"], msg])


func _on_error(kind, items, msg, reports, now):
	var code = str(msg.get("code"))
	var message = str(msg.get("message"))
	if kind == "hello" and code == "wrong_game":
		# Another game's daemon: nothing goes to it; hello again later, as its endpoint may change hands.
		other_game = Wire.other_game(msg)
		_zmtp.close("another game's daemon", now + WRONG_GAME_RETRY_MS)
		_link = LINK_DOWN
		_set_state(WRONG_PEER, "the daemon refused this client (%s): %s" % [code, message], reports)
	elif kind == "hello":
		_halted = true
		_zmtp.close("hello refused")
		_link = LINK_DOWN
		_set_state(REFUSED, "the daemon refused this client (%s): %s" % [code, message], reports)
	else:
		reports.append([R_FAILED, kind, items, code, message])
