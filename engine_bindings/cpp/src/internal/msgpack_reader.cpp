#include "msgpack_reader.hpp"

#include <msgpack.hpp>

#include <string>

namespace engine_bridge::detail {

namespace {

Value FromObject(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::BOOLEAN: return Value(o.via.boolean);
    case msgpack::type::POSITIVE_INTEGER: return Value(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER: return Value(o.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return Value(o.via.f64);
    case msgpack::type::STR: return Value(std::string(o.via.str.ptr, o.via.str.size));
    case msgpack::type::BIN: return Value(Value::Bytes{std::string(o.via.bin.ptr, o.via.bin.size)});
    case msgpack::type::ARRAY: {
      Value::Array items;
      items.reserve(o.via.array.size);
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) items.push_back(FromObject(o.via.array.ptr[i]));
      return Value(std::move(items));
    }
    case msgpack::type::MAP: {
      Value::Map entries;
      entries.reserve(o.via.map.size);
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const msgpack::object_kv& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) continue;
        entries.emplace_back(std::string(kv.key.via.str.ptr, kv.key.via.str.size), FromObject(kv.val));
      }
      return Value(std::move(entries));
    }
    default: return Value();  // nil, and extension types the protocol never sends
  }
}

}  // namespace

std::optional<Value> Decode(const void* data, std::size_t size) noexcept {
  try {
    std::size_t offset = 0;
    msgpack::object_handle oh = msgpack::unpack(static_cast<const char*>(data), size, offset);
    if (offset != size) return std::nullopt;  // a second value after the first: not one frame's map
    return FromObject(oh.get());
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace engine_bridge::detail
