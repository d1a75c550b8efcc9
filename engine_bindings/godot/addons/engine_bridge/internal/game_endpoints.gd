# A game's id and its default endpoints, as the daemon derives them (protocol.md section 1, the
# daemon's bridge/game.py). GDScript has no Unix sockets, so a Godot game's daemon listens on the
# game's own loopback port pair on every OS. Unity's twin is Runtime/Internal/GameEndpoints.cs.

const PORT_BASE = 40000
const PORT_PAIRS = 4500
const FNV_OFFSET = 0x811C9DC5
const FNV_PRIME = 0x01000193
const CLASSIC = ["tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556"]
const PLAIN = "abcdefghijklmnopqrstuvwxyz0123456789"


# 1-32 characters of a-z 0-9 _ -, the first a letter or digit.
static func valid(game):
	if game.length() < 1 or game.length() > 32:
		return false
	for i in range(game.length()):
		var c = game[i]
		if PLAIN.find(c) < 0 and (i == 0 or (c != "_" and c != "-")):
			return false
	return true


# 32-bit FNV-1a of `text`'s UTF-8 bytes (`adapter` makes them).
static func fnv1a(text, adapter):
	var value = FNV_OFFSET
	for byte in adapter.utf8(text):
		value = ((value ^ byte) * FNV_PRIME) & 0xFFFFFFFF
	return value


# [ingress, configs] of a valid game id ("": the classic pair of a daemon run without one).
static func defaults(game, adapter):
	if game == "":
		return CLASSIC.duplicate()
	var port = PORT_BASE + 2 * (fnv1a(game, adapter) % PORT_PAIRS)
	return ["tcp://127.0.0.1:%d" % port, "tcp://127.0.0.1:%d" % (port + 1)]
