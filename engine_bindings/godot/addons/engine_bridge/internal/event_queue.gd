# What waits to go to the daemon, in order: events, and the requests placed among them (sessions,
# flush, purchases), in a ring buffer. At most `capacity` events are kept: beyond that the oldest
# event goes, never a request (the game makes few, and a lost purchase or session_end would go
# unnoticed). Items put back after a lost connection were sent before and may be stored already;
# they sit at the front, so a dropped event is counted as `dropped` only when it never left. Unity's
# twin is Runtime/Internal/EventQueue.cs.

const Wire = preload("wire.gd")

# Room for requests beside the events; the ring grows if the game queues more.
const SPARE_SLOTS = 16

var capacity = 1
# Events a full queue dropped before they were ever sent.
var dropped = 0
# Events a full queue dropped after they were sent without an ack: the daemon may have stored them.
var abandoned = 0
# Items ever queued by push(): a caller tells by it whether anything was queued since it looked.
var pushed = 0

var _ring = []
var _head = 0
var _count = 0
var _events = 0  # events among the _count items
var _sent_front = 0  # the first _sent_front items were sent before


func size():
	return _count


func peek():
	return _ring[_head]


# Keeps the items in order in a ring for `events` events; the oldest events go if more are queued.
func set_capacity(events):
	var items = []
	for i in range(_count):
		items.append(_at(i))
	capacity = events
	_ring = []
	_ring.resize(capacity + SPARE_SLOTS)
	_head = 0
	_count = 0
	_events = 0
	# Oldest first with _sent_front kept: the items sent before are again the first ones.
	for item in items:
		push(item)
	pushed -= items.size()  # the same items again, nothing new


# A new item at the back.
func push(item):
	pushed += 1
	if Wire.is_event(item):
		if _events >= capacity:
			_drop_oldest_event()
		_events += 1
	if _count == _ring.size():
		_grow()
	_ring[(_head + _count) % _ring.size()] = item
	_count += 1


# An item that was sent and must go again (a lost connection): back at the front, before every
# item queued after it. Items go back newest first, so the oldest ends up in front.
func push_front_sent(item):
	if Wire.is_event(item):
		if _events >= capacity:
			abandoned += 1  # older than everything queued: it is the one that goes
			return
		_events += 1
	if _count == _ring.size():
		_grow()
	_head = (_head - 1 + _ring.size()) % _ring.size()
	_ring[_head] = item
	_count += 1
	_sent_front += 1


func pop():
	var item = _ring[_head]
	if Wire.is_event(item):
		_events -= 1
	_ring[_head] = null
	_head = (_head + 1) % _ring.size()
	_count -= 1
	_sent_front = max(_sent_front - 1, 0)
	return item


func _at(i):
	return _ring[(_head + i) % _ring.size()]


# Removes the oldest event; the requests in front of it (rare, few) move up one slot to fill its
# place.
func _drop_oldest_event():
	var n = _ring.size()
	var i = 0
	while not Wire.is_event(_at(i)):
		i += 1
	if i < _sent_front:
		abandoned += 1
		_sent_front -= 1
	else:
		dropped += 1
	for j in range(i, 0, -1):
		_ring[(_head + j) % n] = _ring[(_head + j - 1) % n]
	_ring[_head] = null
	_head = (_head + 1) % n
	_count -= 1
	_events -= 1


func _grow():
	var items = []
	for i in range(_count):
		items.append(_at(i))
	_ring = items
	_ring.resize(max(items.size() * 2, SPARE_SLOTS))
	_head = 0
