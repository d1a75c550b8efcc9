// msgpack encoding: appends to a std::string, every integer and string in its smallest form. Internal.
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "engine_bridge/engine_bridge.hpp"

namespace engine_bridge::detail {

/// Appends msgpack to a std::string (msgpack::packer wants a stream with write()).
class Writer {
 public:
  explicit Writer(std::string& out) : sink_{&out}, pk_(sink_) {}
  void Map(std::uint32_t n) { pk_.pack_map(n); }
  void Array(std::uint32_t n) { pk_.pack_array(n); }
  void Str(std::string_view s) {
    pk_.pack_str(static_cast<std::uint32_t>(s.size()));
    pk_.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
  }
  void Bin(std::string_view bytes) {
    pk_.pack_bin(static_cast<std::uint32_t>(bytes.size()));
    pk_.pack_bin_body(bytes.data(), static_cast<std::uint32_t>(bytes.size()));
  }
  void Int(std::int64_t i) { pk_.pack_int64(i); }  // msgpack-c picks the smallest form
  void UInt(std::uint64_t u) { pk_.pack_uint64(u); }
  /// Always float 64: msgpack-cxx 4's pack_double turns 1.0 into the integer 1, which changes a field's type.
  void Double(double d);
  void Bool(bool b) { b ? pk_.pack_true() : pk_.pack_false(); }
  void Nil() { pk_.pack_nil(); }
  /// Bytes that are already msgpack (a pre-encoded event, the pairs of a request body).
  void Raw(std::string_view bytes) { sink_.out->append(bytes.data(), bytes.size()); }
  /// Any Value, unchecked.
  void Any(const Value& v);

 private:
  struct Sink {
    std::string* out;
    void write(const char* data, std::size_t n) { out->append(data, n); }
  };
  Sink sink_;
  msgpack::packer<Sink> pk_;
};

/// A Value as msgpack bytes.
std::string Pack(const Value& v);

}  // namespace engine_bridge::detail
