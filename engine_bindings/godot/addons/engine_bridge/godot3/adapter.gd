# Godot 3 half of the version adapter: every engine name the shared core needs that Godot 4 renamed.
# The core (engine_bridge.gd and internal/) never names these itself, so it parses and
# runs unchanged in both majors; godot4/adapter.gd answers the same calls.


# Variant type ids the codec branches on (their constant names differ between majors).
func variant_types():
	return {
		"float": TYPE_REAL,
		"bytes": TYPE_RAW_ARRAY,
		"strings": [TYPE_STRING],
		"lists": [TYPE_INT_ARRAY, TYPE_REAL_ARRAY, TYPE_STRING_ARRAY],
	}


func new_bytes():
	return PoolByteArray()


func utf8(text):
	return text.to_utf8()


# Bytes [from, to) of `bytes`; Godot 3's subarray() takes an inclusive end and refuses empty ranges.
func slice_bytes(bytes, from, to):
	if from >= to:
		return PoolByteArray()
	return bytes.subarray(from, to - 1)


# Godot 3's StreamPeerTCP updates its status by itself; nothing to do.
func poll_tcp(_peer):
	pass


func unix_ms():
	return OS.get_system_time_msecs()


func ticks_ms():
	return OS.get_ticks_msec()


func ticks_usec():
	return OS.get_ticks_usec()


# Starts a program without waiting for it; returns its process id, or -1. Godot 3 forks first and
# execs in the child, so a file that cannot be run still gets a process id (the child then dies
# alone): the caller checks is_executable() first.
func start_process(path, args):
	return OS.execute(path, PoolStringArray(args), false)


# Whether `path` may be run: on POSIX its execute permission for this user (`test -x`: Godot 3 has
# no file-mode call); on Windows any file is (a program that cannot start fails its launch there).
func is_executable(path):
	if OS.get_name() == "Windows":
		return true
	return OS.execute("test", PoolStringArray(["-x", path]), true) == 0


# Asks a process to end cleanly: SIGTERM where there are signals (the `kill` program: Godot's own
# OS.kill sends SIGKILL); elsewhere it is ended.
func stop_process(pid):
	if OS.get_name() == "Windows":
		OS.kill(pid)
	else:
		OS.execute("kill", PoolStringArray(["-TERM", str(pid)]), true)


# Whether a file is there; `path` may be absolute (outside res:// and user://).
func file_exists(path):
	return File.new().file_exists(path)


# Keeps `node` processing while the game is paused, so the daemon's PINGs are still answered.
func process_always(node):
	node.pause_mode = Node.PAUSE_MODE_PROCESS


# The notifications a Node receives when the player asks to quit: the window's close button, and
# Android's back button.
func quit_requests():
	return [MainLoop.NOTIFICATION_WM_QUIT_REQUEST, MainLoop.NOTIFICATION_WM_GO_BACK_REQUEST]


# Whether that request ends the game. Godot 3 has no getter for SceneTree's auto_accept_quit and
# quit_on_go_back, so a request is taken to end it (the defaults); a game that turns them off and
# goes on after a request is started again by its next call (README, "Quitting").
func quits_on_request(_tree, _what):
	return true


# The whole text of a file, or "" if it cannot be read.
func read_text(path):
	var f = File.new()
	if f.open(path, File.READ) != OK:
		return ""
	var text = f.get_as_text()
	f.close()
	return text


func write_text(path, text):
	var f = File.new()
	var err = f.open(path, File.WRITE)
	if err != OK:
		return err
	f.store_string(text)
	f.close()
	return OK


# verify_purchase()'s callbacks are FuncRefs: funcref(object, "method").
func is_callback(value):
	return typeof(value) == TYPE_OBJECT and value is FuncRef


func callback_type_name():
	return "FuncRef (funcref(object, \"method\"))"


# Calls `callback` with `args`; false, calling nothing, when its object has been freed.
func call_back(callback, args):
	if not callback.is_valid():
		return false
	callback.call_funcv(args)
	return true
