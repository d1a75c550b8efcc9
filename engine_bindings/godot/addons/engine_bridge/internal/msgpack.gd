# MessagePack (https://github.com/msgpack/msgpack/blob/master/spec.md) for protocol v1 frames.
# Encodes the way Python's msgpack does (smallest int form, float 64, the shortest str/bin/array/map
# header) so a frame is byte-identical to the daemon's own encoding; decodes every type except
# extensions, which protocol v1 never uses. Shared by Godot 3 and 4 through the adapter. Unity's
# twins are Runtime/Internal/MsgPackWriter.cs and MsgPackReader.cs.

# Deeper nesting than this is refused: it is never valid protocol v1 and guards the recursion.
const MAX_DEPTH = 32
# 2^64, to read a uint 64 above Godot's signed 64-bit int range as the nearest float.
const TWO_POW_64 = 18446744073709551616.0
# Only map keys up to this many bytes are cached, and at most CACHE_SIZE of them.
const CACHED_KEY_BYTES = 32
const CACHE_SIZE = 512

# Why the last encode or decode failed; "" when it succeeded.
var error = ""

var _a
var _out = StreamPeerBuffer.new()
var _in = StreamPeerBuffer.new()
# Encoded map keys ("type", "fields", "event_id", ...): they repeat in every event.
var _keys = {}
var _t_float
var _t_bytes
var _t_strings
var _t_lists


func _init(adapter):
	_a = adapter
	_out.big_endian = true
	_in.big_endian = true
	var types = adapter.variant_types()
	_t_float = types["float"]
	_t_bytes = types["bytes"]
	_t_strings = types["strings"]
	_t_lists = types["lists"]


# The Variant types (besides Array) encoded as msgpack arrays: the engine's packed arrays.
func list_types():
	return _t_lists


# One value as msgpack bytes. On a value msgpack cannot carry (an Object, a Vector2, ...) `error`
# says which.
func encode(value):
	begin()
	put(value)
	return take()


# Incremental encoding, for a batch frame that grows one event at a time: begin(), put() values,
# size() to watch the frame grow, rewind() to drop what came after a size(), take() the bytes.
func begin():
	error = ""
	_out.clear()


func put(value):
	_put(value, 0)


func size():
	return _out.get_position()


func rewind(position):
	_out.seek(position)


# Gives the array header reserved at `position` (by put_array16_header) its count, in the smallest
# form: under 16 items the fixarray byte takes the 3 bytes' place and the rest moves up (a small
# frame, so a cheap copy).
func patch_array_header(position, count):
	var end = _out.get_position()
	if count >= 16:
		_out.seek(position + 1)
		_out.put_u16(count)
		_out.seek(end)
		return
	var data = _out.data_array
	var out = _a.slice_bytes(data, 0, position)
	out.append(0x90 | count)
	out.append_array(_a.slice_bytes(data, position + 3, end))
	_out.data_array = out
	_out.seek(out.size())


# Room for an array header whose count is given later: a batch does not know its length in advance.
func put_array16_header():
	_out.put_u8(0xdc)
	_out.put_u16(0)


func put_map_header(count):
	_put_len(count, 0x80, 0xde)


func take():
	var n = _out.get_position()
	if n != _out.get_size():
		_out.resize(n)
	return _out.data_array


# One msgpack value from `bytes`, which must hold exactly that value. On malformed input it returns
# null and `error` says what was wrong and where.
func decode(bytes):
	error = ""
	_in.data_array = bytes
	_in.seek(0)
	var value = _get(0)
	if error == "" and _in.get_available_bytes() > 0:
		_fail("%d bytes left over after the value" % _in.get_available_bytes())
	return null if error != "" else value


func _fail(message):
	if error == "":
		error = message
	return null


func _put(v, depth):
	var t = typeof(v)
	if t == TYPE_STRING:
		_put_str(v)
	elif t == TYPE_INT:
		_put_int(v)
	elif t == TYPE_DICTIONARY:
		if depth >= MAX_DEPTH:
			_fail("nested deeper than %d levels" % MAX_DEPTH)
			return
		_put_len(v.size(), 0x80, 0xde)
		for k in v:
			if typeof(k) == TYPE_STRING:
				_put_key(k)
			else:
				_put(k, depth + 1)
			_put(v[k], depth + 1)
	elif t == _t_float:
		_out.put_u8(0xcb)
		_out.put_double(v)
	elif t == TYPE_BOOL:
		_out.put_u8(0xc3 if v else 0xc2)
	elif t == TYPE_NIL:
		_out.put_u8(0xc0)
	elif t == TYPE_ARRAY or t in _t_lists:
		if depth >= MAX_DEPTH:
			_fail("nested deeper than %d levels" % MAX_DEPTH)
			return
		_put_len(v.size(), 0x90, 0xdc)
		for item in v:
			_put(item, depth + 1)
	elif t == _t_bytes:
		_put_bin(v)
	elif t in _t_strings:
		_put_str(str(v))
	else:
		_fail("cannot encode a value of Variant type %d (%s)" % [t, str(v)])
		_out.put_u8(0xc0)


func _put_int(v):
	if v >= 0:
		if v < 0x80:
			_out.put_u8(v)
		elif v <= 0xff:
			_out.put_u8(0xcc)
			_out.put_u8(v)
		elif v <= 0xffff:
			_out.put_u8(0xcd)
			_out.put_u16(v)
		elif v <= 0xffffffff:
			_out.put_u8(0xce)
			_out.put_u32(v)
		else:
			_out.put_u8(0xcf)
			_out.put_u64(v)
	elif v >= -32:
		_out.put_8(v)
	elif v >= -0x80:
		_out.put_u8(0xd0)
		_out.put_8(v)
	elif v >= -0x8000:
		_out.put_u8(0xd1)
		_out.put_16(v)
	elif v >= -0x80000000:
		_out.put_u8(0xd2)
		_out.put_32(v)
	else:
		_out.put_u8(0xd3)
		_out.put_64(v)


# The header of a str: fixstr up to 31 bytes, then str 8, 16, 32.
func _put_str_header(n):
	if n < 32:
		_out.put_u8(0xa0 | n)
	elif n <= 0xff:
		_out.put_u8(0xd9)
		_out.put_u8(n)
	elif n <= 0xffff:
		_out.put_u8(0xda)
		_out.put_u16(n)
	else:
		_out.put_u8(0xdb)
		_out.put_u32(n)


func _put_str(s):
	var b = _a.utf8(s)
	_put_str_header(b.size())
	_out.put_data(b)


func _put_key(k):
	var cached = _keys.get(k)
	if cached != null:
		_out.put_data(cached)
		return
	var b = _a.utf8(k)
	var start = _out.get_position()
	_put_str_header(b.size())
	_out.put_data(b)
	if b.size() <= CACHED_KEY_BYTES:
		if _keys.size() >= CACHE_SIZE:
			_keys.clear()
		_keys[k] = _a.slice_bytes(_out.data_array, start, _out.get_position())


func _put_bin(b):
	var n = b.size()
	if n <= 0xff:
		_out.put_u8(0xc4)
		_out.put_u8(n)
	elif n <= 0xffff:
		_out.put_u8(0xc5)
		_out.put_u16(n)
	else:
		_out.put_u8(0xc6)
		_out.put_u32(n)
	_out.put_data(b)


# A container header: the fix form (`fix` | n) up to 15 entries, then the 16 and 32 forms.
func _put_len(n, fix, form16):
	if n < 16:
		_out.put_u8(fix | n)
	elif n <= 0xffff:
		_out.put_u8(form16)
		_out.put_u16(n)
	else:
		_out.put_u8(form16 + 1)
		_out.put_u32(n)


# True when `n` more bytes are there to read; otherwise records a truncation error.
func _need(n):
	if _in.get_available_bytes() >= n:
		return true
	_fail("truncated at byte %d: %d more bytes needed" % [_in.get_position(), n])
	return false


func _get(depth):
	if not _need(1):
		return null
	var b = _in.get_u8()
	if b < 0x80:
		return b
	if b >= 0xe0:
		return b - 0x100
	if b >= 0xa0 and b <= 0xbf:
		return _get_str(b & 0x1f)
	if b <= 0x8f:
		return _get_map(b & 0x0f, depth)
	if b <= 0x9f:
		return _get_array(b & 0x0f, depth)
	if b == 0xc0:
		return null
	if b == 0xc2:
		return false
	if b == 0xc3:
		return true
	if b >= 0xc4 and b <= 0xc6:
		return _get_bin(_get_uint(1 << (b - 0xc4)))
	if b == 0xca:
		return _in.get_float() if _need(4) else null
	if b == 0xcb:
		return _in.get_double() if _need(8) else null
	if b >= 0xcc and b <= 0xcf:
		return _get_uint(1 << (b - 0xcc))
	if b >= 0xd0 and b <= 0xd3:
		return _get_int(1 << (b - 0xd0))
	if b >= 0xd9 and b <= 0xdb:
		return _get_str(_get_uint(1 << (b - 0xd9)))
	if b == 0xdc or b == 0xdd:
		return _get_array(_get_uint(2 << (b - 0xdc)), depth)
	if b == 0xde or b == 0xdf:
		return _get_map(_get_uint(2 << (b - 0xde)), depth)
	return _fail("unsupported type byte 0x%02x at byte %d" % [b, _in.get_position() - 1])


# An unsigned int of `width` bytes; a uint 64 above 2^63-1 comes back as the nearest float.
func _get_uint(width):
	if not _need(width):
		return 0
	if width == 1:
		return _in.get_u8()
	if width == 2:
		return _in.get_u16()
	if width == 4:
		return _in.get_u32()
	var v = _in.get_u64()
	return v if v >= 0 else float(v) + TWO_POW_64


func _get_int(width):
	if not _need(width):
		return 0
	if width == 1:
		return _in.get_8()
	if width == 2:
		return _in.get_16()
	if width == 4:
		return _in.get_32()
	return _in.get_64()


func _get_str(n):
	if error != "" or not _need(n):
		return null
	if n == 0:
		return ""
	return _in.get_utf8_string(n)


func _get_bin(n):
	if error != "" or not _need(n):
		return null
	if n == 0:
		return _a.new_bytes()
	return _in.get_data(n)[1]


func _get_array(n, depth):
	# Every element takes at least one byte: a count beyond the bytes left is a lie, not a loop.
	if error != "" or not _need(n):
		return null
	if depth >= MAX_DEPTH:
		return _fail("nested deeper than %d levels" % MAX_DEPTH)
	var out = []
	out.resize(n)
	for i in range(n):
		out[i] = _get(depth + 1)
		if error != "":
			return null
	return out


func _get_map(n, depth):
	if error != "" or not _need(2 * n):
		return null
	if depth >= MAX_DEPTH:
		return _fail("nested deeper than %d levels" % MAX_DEPTH)
	var out = {}
	for _i in range(n):
		var k = _get(depth + 1)
		var v = _get(depth + 1)
		if error != "":
			return null
		out[k] = v
	return out
