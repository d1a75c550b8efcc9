# A small ZMTP 3.1 peer (RFC 23 and 37, rfc.zeromq.org) over the engine's own TCP stream, with the
# NULL mechanism: enough to be the DEALER or the SUB end of the daemon's sockets, since Godot has no
# libzmq. It never waits: poll() does the work that is ready now (connect, handshake, read, write,
# heartbeats, reconnect with backoff) and returns what happened. Shared by Godot 3 and 4. Unity's
# twin is Runtime/Internal/ZmtpConnection.cs (with Link.cs for the reconnecting).

# What poll() reports, as [kind, ...] arrays.
const EV_READY = 0  # [EV_READY]: handshake done, messages may flow
const EV_MESSAGE = 1  # [EV_MESSAGE, frames]: one message, an Array of byte arrays
const EV_CLOSED = 2  # [EV_CLOSED, reason]: a ready connection was lost

const BACKOFF_FIRST_MS = 100
# A connection attempt costs next to nothing, so the wait stays short: a daemon that comes back is
# found within a second, before a long outage's queue overflows (README, "Sizing the queue").
const BACKOFF_MAX_MS = 1000
const CONNECT_TIMEOUT_MS = 3000
const HANDSHAKE_TIMEOUT_MS = 5000
# Send a PING after this long without hearing from the peer; give up on it after HEARTBEAT_TTL_MS.
const HEARTBEAT_IVL_MS = 5000
const HEARTBEAT_TTL_MS = 15000
const PING_TTL_DECISECONDS = 150  # HEARTBEAT_TTL_MS in the unit of the PING command
# The daemon drops messages over 16 MiB; a frame header claiming more is a broken stream.
const MAX_FRAME_BYTES = 16777216
const READ_CHUNK = 262144

const FLAG_MORE = 0x01
const FLAG_LONG = 0x02
const FLAG_COMMAND = 0x04

const STATE_IDLE = 0  # not connected; the next attempt is due at _retry_at
const STATE_CONNECTING = 1
const STATE_HANDSHAKE = 2  # TCP is up, greeting and READY under way
const STATE_READY = 3

const FAIL_NOBODY = "nobody"
const FAIL_FOREIGN = "foreign"

# Plain counters for diagnostics and tests.
var stats = {"connects": 0, "failures": 0, "pings_received": 0, "pongs_received": 0}
# Why the last connection attempt failed or the last connection closed; "" once connected.
var last_error = ""
# What the last failed attempt met: FAIL_NOBODY (no connection: nothing listens there) or
# FAIL_FOREIGN (a connection, but no ZMTP peer we can speak to: another program holds the port); ""
# once connected.
var failure = ""

var _a
var _socket_type
var _host = ""
var _port = 0
var _tcp = null
var _state = STATE_IDLE
var _retry_at = 0
var _backoff = BACKOFF_FIRST_MS
var _eager_until = 0  # until then, failed attempts are retried without growing the backoff
var _since = 0  # when the current state began
var _last_rx = 0
var _last_ping = 0
var _greeted = false
var _rx = StreamPeerBuffer.new()  # received bytes not yet parsed
var _tx  # bytes waiting for the socket
var _parts = []  # frames of the message being received
var _hdr = StreamPeerBuffer.new()  # scratch for frame headers and command bodies


# socket_type: "DEALER" or "SUB", sent in the READY command.
func _init(adapter, socket_type):
	_a = adapter
	_socket_type = socket_type
	_tx = adapter.new_bytes()
	_rx.big_endian = true
	_hdr.big_endian = true


# Parses "tcp://host:port" into {host, port, error}; error is "" or what is wrong. The host must be
# an IP address (or localhost): resolving a name would block the game.
static func parse_endpoint(endpoint):
	var out = {"host": "", "port": 0, "error": ""}
	if typeof(endpoint) != TYPE_STRING or not endpoint.begins_with("tcp://"):
		out["error"] = "endpoint must be a string tcp://IP:port (Godot has no ipc:// sockets), got %s" % [
			str(endpoint)
		]
		return out
	var rest = endpoint.substr(6, endpoint.length() - 6)
	var colon = rest.rfind(":")
	var host = rest.substr(0, colon) if colon > 0 else ""
	var port_text = rest.substr(colon + 1, rest.length() - colon - 1)
	if host.begins_with("[") and host.ends_with("]"):
		host = host.substr(1, host.length() - 2)
	if host == "localhost":
		host = "127.0.0.1"
	var port = port_text.to_int()
	if not host.is_valid_ip_address():
		out["error"] = "endpoint %s: the host must be an IP address" % endpoint
	elif str(port) != port_text or port < 1 or port > 65535:
		out["error"] = "endpoint %s: the port must be 1 to 65535" % endpoint
	else:
		out["host"] = host
		out["port"] = port
	return out


# Where to connect from the next attempt on; `endpoint` must be valid (see parse_endpoint).
func set_endpoint(endpoint):
	var parsed = parse_endpoint(endpoint)
	_host = parsed["host"]
	_port = parsed["port"]


# Queues one message (an Array of byte arrays). False when no connection is ready: the caller keeps
# the message and sends it again after the next EV_READY.
func send(frames):
	if _state != STATE_READY:
		return false
	var last = frames.size() - 1
	for i in range(frames.size()):
		_queue_frame(frames[i], FLAG_MORE if i < last else 0)
	return true


# A SUB's subscription to a topic prefix, the ZMTP 3.0 way (a message 0x01 + prefix).
func subscribe(prefix):
	var body = _a.new_bytes()
	body.append(1)
	body.append_array(_a.utf8(prefix))
	return send([body])


# Drops the connection on purpose (a changed endpoint or identity, the end): no EV_CLOSED, not a
# failure (the last one is forgotten), and the next poll() connects again at once, or from the
# ticks ms `retry_at` on.
func close(reason, retry_at = 0):
	_teardown(reason)
	_retry_at = retry_at
	_backoff = BACKOFF_FIRST_MS
	failure = ""


# Tries again at once, and every BACKOFF_FIRST_MS until `until` (ticks ms) if it fails: a daemon is
# known to be coming (just launched) or the game is about to quit and has no time to wait.
func hurry(now, until):
	_eager_until = until
	_backoff = BACKOFF_FIRST_MS
	if _state == STATE_IDLE:
		_retry_at = now


# Does whatever is ready and returns the events that happened, oldest first.
func poll(now):
	var events = []
	if _state == STATE_IDLE:
		if now >= _retry_at and _port != 0:
			_start_connect(now, events)
	elif _state == STATE_CONNECTING:
		_poll_connecting(now, events)
	if _state == STATE_HANDSHAKE or _state == STATE_READY:
		_poll_connected(now, events)
	return events


func _start_connect(now, events):
	_tcp = StreamPeerTCP.new()
	_state = STATE_CONNECTING
	_since = now
	var err = _tcp.connect_to_host(_host, _port)
	if err != OK:
		_close("connect_to_host failed with error %d" % err, now, events)


func _poll_connecting(now, events):
	_a.poll_tcp(_tcp)
	var status = _tcp.get_status()
	if status == StreamPeerTCP.STATUS_CONNECTED:
		_tcp.set_no_delay(true)
		_state = STATE_HANDSHAKE
		_since = now
		_last_rx = now
		_greeted = false
		_parts = []
		_rx.data_array = _a.new_bytes()
		_tx = _a.new_bytes()
		_queue_greeting()
	elif status != StreamPeerTCP.STATUS_CONNECTING:
		_close("cannot connect to %s:%d" % [_host, _port], now, events)
	elif now - _since > CONNECT_TIMEOUT_MS:
		_close("connecting to %s:%d timed out" % [_host, _port], now, events)


func _poll_connected(now, events):
	_a.poll_tcp(_tcp)
	if _tcp.get_status() != StreamPeerTCP.STATUS_CONNECTED:
		_close("connection closed by the peer", now, events)
		return
	if not _read(now, events):
		return
	if not _parse(now, events):
		return
	if _state == STATE_HANDSHAKE and now - _since > HANDSHAKE_TIMEOUT_MS:
		_close("ZMTP handshake timed out", now, events)
		return
	if _state == STATE_READY:
		if now - _last_rx > HEARTBEAT_TTL_MS:
			_close("peer silent for %d ms" % HEARTBEAT_TTL_MS, now, events)
			return
		if now - _last_rx >= HEARTBEAT_IVL_MS and now - _last_ping >= HEARTBEAT_IVL_MS:
			_last_ping = now
			_queue_ping()
	_write(now, events)


# Hands queued bytes to the socket now instead of at the next poll(); returns events like poll().
func write_now(now):
	var events = []
	if _state == STATE_HANDSHAKE or _state == STATE_READY:
		_write(now, events)
	return events


# Takes what the socket has. Reading even when nothing is announced is how a closed peer shows.
func _read(now, events):
	var n = _tcp.get_available_bytes()
	var got = _tcp.get_partial_data(clamp(n, 1, READ_CHUNK))
	if got[0] != OK:
		_close("connection lost while reading (error %d)" % got[0], now, events)
		return false
	var chunk = got[1]
	if chunk.size() == 0:
		return true
	_last_rx = now
	var pos = _rx.get_position()
	var size = _rx.get_size()
	if pos >= size:
		_rx.data_array = chunk
	else:
		var rest = _a.slice_bytes(_rx.data_array, pos, size)
		rest.append_array(chunk)
		_rx.data_array = rest
	_rx.seek(0)
	return true


func _write(now, events):
	var n = _tx.size()
	if n == 0:
		return
	var res = _tcp.put_partial_data(_tx)
	if res[0] != OK:
		_close("connection lost while writing (error %d)" % res[0], now, events)
	elif res[1] >= n:
		_tx = _a.new_bytes()
	elif res[1] > 0:
		_tx = _a.slice_bytes(_tx, res[1], n)


# Consumes every complete greeting, command and frame in the receive buffer.
func _parse(now, events):
	while true:
		var avail = _rx.get_available_bytes()
		if not _greeted:
			if avail < 64:
				# A greeting starts with 0xff: another protocol (an HTTP server...) shows at once.
				if avail > 0 and _rx.data_array[_rx.get_position()] != 0xff:
					_close("the peer does not speak ZMTP", now, events)
					return false
				return true
			var reason = _check_greeting(_rx.get_data(64)[1])
			if reason != "":
				_close(reason, now, events)
				return false
			_greeted = true
			continue
		if avail < 2:
			return true
		var start = _rx.get_position()
		var flags = _rx.get_u8()
		var size = 0
		if flags & FLAG_LONG:
			if avail < 9:
				_rx.seek(start)
				return true
			size = _rx.get_u64()
		else:
			size = _rx.get_u8()
		if size < 0 or size > MAX_FRAME_BYTES:
			_close("frame of %d bytes is over the limit" % size, now, events)
			return false
		if _rx.get_available_bytes() < size:
			_rx.seek(start)
			return true
		var body = _a.new_bytes() if size == 0 else _rx.get_data(size)[1]
		if flags & FLAG_COMMAND:
			if not _command(body, now, events):
				return false
		elif _state == STATE_READY:
			_parts.append(body)
			if not (flags & FLAG_MORE):
				events.append([EV_MESSAGE, _parts])
				_parts = []
	return true


func _check_greeting(g):
	if g[0] != 0xff or g[9] != 0x7f:
		return "the peer does not speak ZMTP"
	if g[10] < 3:
		return "the peer speaks ZMTP %d.%d; 3.0 or later is needed" % [g[10], g[11]]
	var mechanism = _a.slice_bytes(g, 12, 32).get_string_from_ascii()
	if mechanism != "NULL":
		return "the peer wants security mechanism %s; only NULL is supported" % mechanism
	return ""


# Handles one command frame; false if it closed the connection.
func _command(body, now, events):
	if body.size() < 1 or body.size() < 1 + body[0]:
		_close("malformed ZMTP command", now, events)
		return false
	var name = _a.slice_bytes(body, 1, 1 + body[0]).get_string_from_ascii()
	var data_at = 1 + body[0]
	if name == "READY":
		if _state == STATE_HANDSHAKE:
			_state = STATE_READY
			_backoff = BACKOFF_FIRST_MS
			last_error = ""
			failure = ""
			_last_ping = now
			stats["connects"] += 1
			events.append([EV_READY])
	elif name == "ERROR":
		var reason = _a.slice_bytes(body, data_at + 1, body.size()).get_string_from_utf8()
		_close("the peer refused the connection: %s" % reason, now, events)
		return false
	elif name == "PING":
		stats["pings_received"] += 1
		# PING carries a 2-byte TTL, then up to 16 bytes of context that the PONG must echo.
		_queue_command("PONG", _a.slice_bytes(body, min(data_at + 2, body.size()), body.size()))
	elif name == "PONG":
		stats["pongs_received"] += 1
	return true


# A lost connection or a failed attempt: reported, and retried after the current backoff.
func _close(reason, now, events):
	if _state == STATE_READY:
		events.append([EV_CLOSED, reason])
	else:
		stats["failures"] += 1
		failure = FAIL_FOREIGN if _state == STATE_HANDSHAKE else FAIL_NOBODY
	_teardown(reason)
	_retry_at = now + _backoff
	if now >= _eager_until:
		_backoff = min(_backoff * 2, BACKOFF_MAX_MS)


func _teardown(reason):
	if _tcp != null:
		_tcp.disconnect_from_host()
		_tcp = null
	last_error = reason
	_state = STATE_IDLE
	_tx = _a.new_bytes()
	_parts = []


# Signature, version 3.1, mechanism NULL, as-server 0, filler; then the READY command.
func _queue_greeting():
	var g = _a.new_bytes()
	g.resize(64)
	for i in range(64):
		g[i] = 0
	g[0] = 0xff
	g[9] = 0x7f
	g[10] = 3
	g[11] = 1
	var mechanism = _a.utf8("NULL")
	for i in range(mechanism.size()):
		g[12 + i] = mechanism[i]
	_tx.append_array(g)
	_hdr.clear()
	_hdr.put_u8(11)
	_hdr.put_data(_a.utf8("Socket-Type"))
	_hdr.put_u32(_socket_type.length())
	_hdr.put_data(_a.utf8(_socket_type))
	_queue_command("READY", _hdr.data_array)


# PING with a TTL (in tenths of a second) telling the peer how long to wait for us, no context.
func _queue_ping():
	_hdr.clear()
	_hdr.put_u16(PING_TTL_DECISECONDS)
	_queue_command("PING", _hdr.data_array)


func _queue_command(name, data):
	var body = _a.new_bytes()
	body.append(name.length())
	body.append_array(_a.utf8(name))
	body.append_array(data)
	_queue_frame(body, FLAG_COMMAND)


func _queue_frame(body, flags):
	var n = body.size()
	_hdr.clear()
	if n > 255:
		_hdr.put_u8(flags | FLAG_LONG)
		_hdr.put_u64(n)
	else:
		_hdr.put_u8(flags)
		_hdr.put_u8(n)
	_tx.append_array(_hdr.data_array)
	_tx.append_array(body)
