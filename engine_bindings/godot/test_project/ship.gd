extends "res://harness.gd"
# A game shipped with the bundled daemon, as tests/bindings/shipping.py drives every binding's (the
# C++ and Unity ones do the same steps and print the same lines). The EngineBridge autoload runs on
# the Project Settings the wrapper wrote: the game id, auto_launch and the daemon's path relative to
# this game's executable (a copy of Godot in the game's install folder, as an export is).
#
#   <game> --path <project> -- play|quit COUNT
#   <game> --path <project> -- missing      daemon/executable names no file, or one not executable
#   <game> --path <project> -- wrong COUNT  the endpoints are another game's daemon's, until this
#                                           game's own takes them over

const WAIT_S = 60.0

var count = 0


func _ready():
	var args = Array(OS.get_cmdline_args())
	args = args.slice(args.find("--") + 1, args.size() - 1)
	var mode = args[0]
	count = int(args[1]) if args.size() > 1 else 0
	if mode == "missing":
		_missing()
	elif mode == "wrong":
		_wrong()
	else:
		_play(mode)


func stored_at_least(n, other_than):
	var s = EngineBridge.get_stats()
	return s["stored"] >= n and s["daemon_pid"] != other_than and s["daemon_pid"] != 0


func error_has(text):
	return EngineBridge.get_last_error().find(text) >= 0


func _track(from, n):
	for i in range(from, from + n):
		EngineBridge.track("ship", {"n": i})


func _missing():
	var failed = yield(wait("state_is", [EngineBridge, "launch_failed"], WAIT_S), "completed")
	print(("LAUNCH FAILED " if failed else "NO FAILURE ") + EngineBridge.get_last_error())
	get_tree().quit(0 if failed else 1)


func stored_exactly(n):
	return EngineBridge.get_stats()["stored"] == n


func _wrong():
	_track(0, count)
	var refused = yield(wait("error_has", ["wrong_game"], WAIT_S), "completed")
	print(("REFUSED " if refused else "NOT REFUSED ") + EngineBridge.get_last_error())
	print("STORED %d" % EngineBridge.get_stats()["stored"])
	if not refused:
		get_tree().quit(1)
		return
	# The events stay queued; the wrapper stops the other game's daemon and starts this game's own
	# on the same endpoints: asked again every few seconds, it gets them.
	var taken = yield(wait("stored_exactly", [count], WAIT_S), "completed")
	var stats = EngineBridge.get_stats()
	if taken:
		print("TAKEN OVER STORED %d" % stats["stored"])
	else:
		print("NOT TAKEN OVER %s %s" % [EngineBridge.get_last_error(), str(stats)])
	get_tree().quit(0 if taken else 1)


func _play(mode):
	_track(0, count)
	if not (yield(wait("stored_at_least", [count, 0], WAIT_S), "completed")):
		print("NOT ACKED %s" % str(EngineBridge.get_stats()))
		get_tree().quit(1)
		return
	var first = EngineBridge.get_stats()["daemon_pid"]
	print("ACKED %d DAEMON %d" % [count, first])
	if first <= 0:  # kill(0) would kill the whole process group: the test run itself
		print("NO DAEMON PID")
		get_tree().quit(1)
		return
	OS.kill(first)  # SIGKILL: the daemon dies under the game, which launches it again
	_track(count, count)
	if not (yield(wait("stored_at_least", [2 * count, first], WAIT_S), "completed")):
		print("NOT RELAUNCHED %s %s" % [EngineBridge.get_last_error(), str(EngineBridge.get_stats())])
		get_tree().quit(1)
		return
	print("RELAUNCHED %d DAEMON %d" % [2 * count, EngineBridge.get_stats()["daemon_pid"]])
	if mode == "quit":
		print("QUIT")
		get_tree().quit(0)  # the autoload leaves the tree: it drains and stops the daemon
		return
	print("PLAYING")  # until the wrapper kills the game
