# The SUB side of the configs socket (protocol.md section 7): subscribes on every connection to the
# prefixes the welcome lists, config/ and purchase/<device_id> (the daemon then publishes the
# current value of each topic, so a reconnect also catches up), and sorts each two-frame
# publication: the device's verdicts topic for the purchases, the rest for the ConfigStore. Unity's
# twin is Runtime/Internal/ConfigLink.cs.

const Zmtp = preload("zmtp.gd")
const ConfigStore = preload("config_store.gd")

# What poll() and apply() report.
const CONFIGS_CHANGED = 0  # [CONFIGS_CHANGED, [[key, value], ...], snapshot]
const VERDICTS = 1  # [VERDICTS, values of purchase/<device_id>]

var store
var _mp
var _sub
var _topics = []  # prefixes to subscribe to
var _purchase_topic = ""


func _init(adapter, codec):
	_mp = codec
	_sub = Zmtp.new(adapter, "SUB")


func set_endpoint(endpoint):
	_sub.set_endpoint(endpoint)
	_sub.close("endpoint changed")


# A new device: its own GameRamp and purchase topics, every config received again.
func set_device(device_id):
	_purchase_topic = "purchase/" + device_id
	_topics = ["config/", _purchase_topic]
	store = ConfigStore.new(device_id)
	_sub.close("device id changed")


# The welcome's `topics`: any prefix not yet subscribed to is, from now on and at each connection.
func subscribe(topics):
	for topic in topics:
		if typeof(topic) == TYPE_STRING and not topic in _topics:
			_topics.append(topic)
			_sub.subscribe(topic)


func close(reason):
	_sub.close(reason)


func poll(now):
	var reports = []
	for ev in _sub.poll(now):
		if ev[0] == Zmtp.EV_READY:
			for prefix in _topics:
				_sub.subscribe(prefix)
		elif ev[0] == Zmtp.EV_MESSAGE and ev[1].size() == 2:
			var publication = _mp.decode(ev[1][1])
			if typeof(publication) == TYPE_DICTIONARY:
				_apply(ev[1][0].get_string_from_utf8(), publication, reports)
	return reports


# Publications that came another way: the `topics` of a `configs` reply (section 4.8).
func apply_all(topics):
	var reports = []
	for topic in topics:
		if typeof(topics[topic]) == TYPE_DICTIONARY:
			_apply(topic, topics[topic], reports)
	return reports


func _apply(topic, publication, reports):
	if topic == _purchase_topic:
		if typeof(publication.get("values")) == TYPE_DICTIONARY:
			reports.append([VERDICTS, publication["values"]])
		return
	var changes = store.apply(topic, publication)
	if changes != null:
		reports.append([CONFIGS_CHANGED, changes, store.snapshot()])
