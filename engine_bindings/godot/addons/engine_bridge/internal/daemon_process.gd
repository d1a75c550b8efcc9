# The daemon started by the game (setting daemon/auto_launch). While nothing listens at the ingress
# endpoint the bridge asks maybe_launch(): the command starts at once, and again, less and less
# often (up to every RELAUNCH_MAX_MS), for as long as no daemon answers, so one that died is
# replaced; a daemon already running makes the new one exit at once (its endpoint is taken). Unity's
# twin is Runtime/Internal/DaemonProcess.cs.

# A started daemon gets this long to answer before it counts as absent or is started again.
const STARTUP_GRACE_MS = 10000
const RELAUNCH_MAX_MS = 30000

# The process id of the daemon last started, 0 if none was.
var pid = 0

var _a
var _next_at = 0
var _backoff = STARTUP_GRACE_MS


func _init(adapter):
	_a = adapter


# A daemon answered: a later outage may start one at once again.
func on_connected():
	_next_at = 0
	_backoff = STARTUP_GRACE_MS


# Starts `executable` with `arguments` plus the endpoints if it is time to. Returns the new
# process id, 0 when it is not time, or -1 when the program could not be started.
func maybe_launch(now, executable, arguments, ingress, publish):
	if now < _next_at:
		return 0
	_next_at = now + _backoff
	_backoff = min(_backoff * 2, RELAUNCH_MAX_MS)
	var args = []
	for arg in arguments:
		args.append(str(arg))
	args += ["--ingress", ingress, "--publish", publish]
	var started = _a.start_process(executable, args)
	if started <= 0:
		return -1
	pid = started
	print("EngineBridge: started the daemon (pid %d): %s %s" % [pid, executable, str(args)])
	return pid
