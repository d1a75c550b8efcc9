# Godot 4 half of the version adapter: every engine name the shared core needs that Godot 3 spells
# differently. The core never names these itself; godot3/adapter.gd answers the same calls.


# Variant type ids the codec branches on (their constant names differ between majors).
func variant_types():
	return {
		"float": TYPE_FLOAT,
		"bytes": TYPE_PACKED_BYTE_ARRAY,
		"strings": [TYPE_STRING, TYPE_STRING_NAME],
		"lists": [
			TYPE_PACKED_INT32_ARRAY,
			TYPE_PACKED_INT64_ARRAY,
			TYPE_PACKED_FLOAT32_ARRAY,
			TYPE_PACKED_FLOAT64_ARRAY,
			TYPE_PACKED_STRING_ARRAY,
		],
	}


func new_bytes():
	return PackedByteArray()


func utf8(text):
	return text.to_utf8_buffer()


# Bytes [from, to) of `bytes`.
func slice_bytes(bytes, from, to):
	return bytes.slice(from, to)


# Godot 4's StreamPeerTCP only updates its status (and notices a closed peer) when polled.
func poll_tcp(peer):
	peer.poll()


func unix_ms():
	return int(Time.get_unix_time_from_system() * 1000.0)


func ticks_ms():
	return Time.get_ticks_msec()


func ticks_usec():
	return Time.get_ticks_usec()


# Starts a program without waiting for it; returns its process id, or -1.
func start_process(path, args):
	return OS.create_process(path, PackedStringArray(args))


# Whether `path` may be run: on POSIX its execute permission for this user (`test -x`, as the
# Godot 3 adapter: FileAccess.get_unix_permissions is 4.1 and later only); on Windows any file is.
func is_executable(path):
	if OS.get_name() == "Windows":
		return true
	return OS.execute("test", PackedStringArray(["-x", path])) == 0


# Asks a process to end cleanly: SIGTERM where there are signals (the `kill` program: OS.kill
# ends it at once); elsewhere it is ended.
func stop_process(pid):
	if OS.get_name() == "Windows":
		OS.kill(pid)
	else:
		OS.execute("kill", PackedStringArray(["-TERM", str(pid)]))


# Whether a file is there; `path` may be absolute (outside res:// and user://).
func file_exists(path):
	return FileAccess.file_exists(path)


# Keeps `node` processing while the game is paused, so the daemon's PINGs are still answered.
func process_always(node):
	node.process_mode = Node.PROCESS_MODE_ALWAYS


# The notifications a Node receives when the player asks to quit: the window's close button, and
# Android's back button.
func quit_requests():
	return [Node.NOTIFICATION_WM_CLOSE_REQUEST, Node.NOTIFICATION_WM_GO_BACK_REQUEST]


# Whether that request ends the game: a game may turn that off to ask the player first, and then
# quits itself (the bridge then drains as it leaves the tree).
func quits_on_request(tree, what):
	if tree == null:
		return true
	if what == Node.NOTIFICATION_WM_GO_BACK_REQUEST:
		return tree.quit_on_go_back
	return tree.auto_accept_quit


# The whole text of a file, or "" if it cannot be read.
func read_text(path):
	var f = FileAccess.open(path, FileAccess.READ)
	if f == null:
		return ""
	return f.get_as_text()


func write_text(path, text):
	var f = FileAccess.open(path, FileAccess.WRITE)
	if f == null:
		return FileAccess.get_open_error()
	f.store_string(text)
	return OK


# verify_purchase()'s callbacks are Callables: a method (`_on_verdict`) or a lambda.
func is_callback(value):
	return typeof(value) == TYPE_CALLABLE


func callback_type_name():
	return "Callable"


# Calls `callback` with `args`; false, calling nothing, when its object has been freed.
func call_back(callback, args):
	if not callback.is_valid():
		return false
	callback.callv(args)
	return true
