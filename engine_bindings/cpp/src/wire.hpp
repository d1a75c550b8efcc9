// msgpack on the wire: a writer over std::string, protocol.md's limits checked while packing, and the
// decoding of replies and publications into Value. Internal to the library.
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine_bridge/engine_bridge.hpp"

namespace engine_bridge::detail {

// protocol.md section 8 (the daemon repeats them in `welcome.limits`).
inline constexpr std::size_t kMaxMessageBytes = 256 * 1024;
inline constexpr std::size_t kMaxBatchEvents = 1000;
inline constexpr std::size_t kMaxEventIdChars = 64;
inline constexpr std::size_t kMaxFields = 64;
inline constexpr std::size_t kMaxStringChars = 8192;
inline constexpr int kMaxDepth = 4;
inline constexpr std::size_t kMaxKeyChars = 64;
inline constexpr std::size_t kMaxUserIdChars = 128;
inline constexpr std::size_t kMaxReceiptChars = 65536;
// Room for a batch's own header around the events, so one event alone always fits in a message.
inline constexpr std::size_t kBatchHeaderRoom = 64;
inline constexpr std::size_t kMaxEventBytes = kMaxMessageBytes - kBatchHeaderRoom;

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
  void Int(std::int64_t i) { pk_.pack_int64(i); }    // msgpack-c picks the smallest form
  void UInt(std::uint64_t u) { pk_.pack_uint64(u); }
  /// Always float 64: msgpack-cxx 4's pack_double turns 1.0 into the integer 1, which changes a field's type.
  void Double(double d);
  void Bool(bool b) { b ? pk_.pack_true() : pk_.pack_false(); }
  void Nil() { pk_.pack_nil(); }
  /// Bytes that are already msgpack (a pre-encoded event).
  void Raw(std::string_view bytes) { sink_.out->append(bytes.data(), bytes.size()); }
  /// Any Value, unchecked: for values that came from the daemon.
  void Any(const Value& v);

 private:
  struct Sink {
    std::string* out;
    void write(const char* data, std::size_t n) { out->append(data, n); }
  };
  Sink sink_;
  msgpack::packer<Sink> pk_;
};

/// Code points in valid UTF-8, or nothing when `s` is not valid UTF-8 (the daemon refuses the whole
/// message then, so one bad string must never reach a batch).
std::optional<std::size_t> Utf8Chars(std::string_view s) noexcept;

/// Where a value sits inside an event, rendered only when there is an error to report.
struct Path {
  const Path* parent = nullptr;
  std::string_view key;  // used when is_index is false
  std::size_t index = 0;
  bool is_index = false;
  std::string Render() const;
};

/// Checks `v` against protocol.md section 8 (depth, entries, key and string lengths, finite floats, UTF-8)
/// while packing it; on error `out` holds garbage and the Status names the path.
Status PackChecked(Writer& w, const Value& v, const Path& where, int depth);
/// A string inside an event: valid UTF-8, at most kMaxStringChars.
Status CheckString(std::string_view s, const Path& where);
/// A map key: valid UTF-8, 1–64 chars.
Status CheckKey(std::string_view key, const Path& where);

/// A decoded frame, or nothing when it is not msgpack.
std::optional<Value> Decode(const void* data, std::size_t size);

Status Invalid(std::string message);
/// "NaN", "infinity" or the number, for error messages.
std::string NumberText(double d);

}  // namespace engine_bridge::detail
