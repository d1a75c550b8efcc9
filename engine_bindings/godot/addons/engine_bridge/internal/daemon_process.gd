# The daemon started by the game (setting daemon/auto_launch): the bundled daemon shipped with the
# game (engine-bridge bundle), found from a path relative to the game's executable, run on the
# game's endpoints, with its game id and tied to the game's life. While nothing listens at the
# ingress endpoint the bridge asks maybe_launch(): the daemon starts at once, and again, less and
# less often (up to every RELAUNCH_MAX_MS), for as long as none answers, so one that died is
# replaced; a daemon already running makes the new one exit at once (its endpoint is taken).
# stop() ends it when the game ends. Godot cannot give a child a pipe without blocking the frame,
# so the daemon is told the game's process id (--parent-pid) and stops by itself once that process
# is gone, however the game ended (a crash, a kill -9). Unity's twin is
# Runtime/Internal/DaemonProcess.cs, the C++ one src/internal/daemon_process.cpp.

# A started daemon gets this long to answer before it counts as absent or is started again.
const STARTUP_GRACE_MS = 10000
const RELAUNCH_MAX_MS = 30000

# The process id of the daemon running as this game's child, 0 if none is.
var pid = 0
# Why the last launch failed, "" if it did not.
var error = ""

var _a
var _next_at = 0
var _backoff = STARTUP_GRACE_MS


func _init(adapter):
	_a = adapter


# A daemon answered: a later outage may start one at once again.
func on_connected():
	_next_at = 0
	_backoff = STARTUP_GRACE_MS


# `executable` as it is when absolute, else found in `base_dir` ("": the folder of the game's
# executable, wherever the game was started from).
static func resolve(executable, base_dir):
	var absolute = executable.begins_with("/") or executable.begins_with("\\")
	absolute = absolute or (executable.length() > 2 and executable[1] == ":")
	if absolute:
		return executable
	var base = base_dir if base_dir != "" else OS.get_executable_path().get_base_dir()
	return base.trim_suffix("/").trim_suffix("\\") + "/" + executable


# The whole command line: the daemon runs the game's endpoints for its game id, and stops once this
# process (the game) is gone.
static func command(arguments, ingress, publish, game):
	var args = ["run", "--ingress", ingress, "--publish", publish]
	args += ["--parent-pid", str(OS.get_process_id())]
	if game != "":
		args += ["--game", game]
	for arg in arguments:
		args.append(str(arg))
	return args


# Starts `path` with `args` if it is time to. Returns the new process id, 0 when it is not time,
# or -1 with the reason in `error` when it could not be started: no such file, or one this user
# may not run (Godot 3's launch forks before it execs, so it reports a process id for either, whose
# child then fails alone).
func maybe_launch(now, path, args):
	if now < _next_at:
		return 0
	_next_at = now + _backoff
	_backoff = min(_backoff * 2, RELAUNCH_MAX_MS)
	error = ""
	if not _a.file_exists(path):
		error = "no daemon executable at %s" % path
		return -1
	if not _a.is_executable(path):
		error = (
			"the daemon at %s is not executable (ship it with its file modes, or chmod +x it)"
			% path
		)
		return -1
	var started = _a.start_process(path, args)
	if started <= 0:
		error = "could not start %s" % path
		return -1
	pid = started
	print("EngineBridge: started the daemon (pid %d): %s %s" % [pid, path, str(args)])
	return pid


# Asks the daemon this game started to stop cleanly (SIGTERM; elsewhere than POSIX it is ended),
# without waiting for it: everything it acknowledged is already in its store.
func stop():
	if pid > 0:
		_a.stop_process(pid)
		print("EngineBridge: stopped the daemon (pid %d)" % pid)
	pid = 0
