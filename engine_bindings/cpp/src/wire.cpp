#include "wire.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace engine_bridge {

// --- Value (declared in the public header) ------------------------------------------------------------

std::optional<bool> Value::AsBool() const noexcept {
  if (const bool* b = std::get_if<bool>(&v_)) return *b;
  return std::nullopt;
}

std::optional<std::int64_t> Value::AsInt() const noexcept {
  if (const std::int64_t* i = std::get_if<std::int64_t>(&v_)) return *i;
  return std::nullopt;  // a UInt above INT64_MAX does not fit
}

std::optional<std::uint64_t> Value::AsUInt() const noexcept {
  if (const std::uint64_t* u = std::get_if<std::uint64_t>(&v_)) return *u;
  if (const std::int64_t* i = std::get_if<std::int64_t>(&v_); i && *i >= 0) return static_cast<std::uint64_t>(*i);
  return std::nullopt;
}

std::optional<double> Value::AsDouble() const noexcept {
  if (const double* d = std::get_if<double>(&v_)) return *d;
  if (const std::int64_t* i = std::get_if<std::int64_t>(&v_)) return static_cast<double>(*i);
  if (const std::uint64_t* u = std::get_if<std::uint64_t>(&v_)) return static_cast<double>(*u);
  return std::nullopt;
}

const Value* Value::Find(std::string_view key) const noexcept {
  if (const Map* m = AsMap()) {
    for (const auto& [k, v] : *m) {
      if (k == key) return &v;
    }
  }
  return nullptr;
}

namespace detail {

Status Invalid(std::string message) { return Status(ErrorCode::InvalidArgument, std::move(message)); }

std::string NumberText(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "infinity" : "-infinity";
  return std::to_string(d);
}

void Writer::Double(double d) {
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  char buf[9];
  buf[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
  sink_.write(buf, sizeof buf);
}

void Writer::Any(const Value& v) {
  switch (v.type()) {
    case Value::Type::Nil: Nil(); break;
    case Value::Type::Bool: Bool(*v.AsBool()); break;
    case Value::Type::Int: Int(*v.AsInt()); break;
    case Value::Type::UInt: UInt(*v.AsUInt()); break;
    case Value::Type::Double: Double(*v.AsDouble()); break;
    case Value::Type::String: Str(*v.AsString()); break;
    case Value::Type::Array:
      Array(static_cast<std::uint32_t>(v.AsArray()->size()));
      for (const Value& item : *v.AsArray()) Any(item);
      break;
    case Value::Type::Map:
      Map(static_cast<std::uint32_t>(v.AsMap()->size()));
      for (const auto& [k, item] : *v.AsMap()) {
        Str(k);
        Any(item);
      }
      break;
  }
}

std::optional<std::size_t> Utf8Chars(std::string_view s) noexcept {
  std::size_t chars = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {  // the common case: ASCII
      ++p;
      ++chars;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return std::nullopt;
    if (static_cast<std::size_t>(end - p) < len) return std::nullopt;
    for (std::size_t i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return std::nullopt;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    static constexpr std::uint32_t kMinForLength[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
    p += len;
    ++chars;
  }
  return chars;
}

std::string Path::Render() const {
  std::vector<const Path*> chain;
  for (const Path* p = this; p != nullptr; p = p->parent) chain.push_back(p);
  std::string out;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if ((*it)->is_index) {
      out += '[' + std::to_string((*it)->index) + ']';
    } else {
      if (!out.empty()) out += '.';
      out += (*it)->key;
    }
  }
  return out;
}

Status CheckString(std::string_view s, const Path& where) {
  std::optional<std::size_t> chars = Utf8Chars(s);
  if (!chars) return Invalid(where.Render() + ": not valid UTF-8");
  if (*chars > kMaxStringChars) {
    return Invalid(where.Render() + ": string of " + std::to_string(*chars) + " chars; the limit is " +
                   std::to_string(kMaxStringChars));
  }
  return Status();
}

Status CheckKey(std::string_view key, const Path& where) {
  std::optional<std::size_t> chars = Utf8Chars(key);
  if (!chars) return Invalid(where.Render() + ": a key is not valid UTF-8");
  if (*chars < 1 || *chars > kMaxKeyChars) {
    return Invalid(where.Render() + ": key \"" + std::string(key.substr(0, 80)) + "\" must be 1.." +
                   std::to_string(kMaxKeyChars) + " chars");
  }
  return Status();
}

Status PackChecked(Writer& w, const Value& v, const Path& where, int depth) {
  switch (v.type()) {
    case Value::Type::Double: {
      double d = *v.AsDouble();
      if (!std::isfinite(d)) return Invalid(where.Render() + ": " + NumberText(d) + " is not a finite number");
      w.Double(d);
      return Status();
    }
    case Value::Type::String: {
      if (Status s = CheckString(*v.AsString(), where); !s) return s;
      w.Str(*v.AsString());
      return Status();
    }
    case Value::Type::Array: {
      const Value::Array& items = *v.AsArray();
      if (depth >= kMaxDepth) return Invalid(where.Render() + ": nested deeper than " + std::to_string(kMaxDepth) + " levels");
      if (items.size() > kMaxFields) {
        return Invalid(where.Render() + ": " + std::to_string(items.size()) + " items; the limit is " +
                       std::to_string(kMaxFields));
      }
      w.Array(static_cast<std::uint32_t>(items.size()));
      for (std::size_t i = 0; i < items.size(); ++i) {
        Path item{&where, {}, i, true};
        if (Status s = PackChecked(w, items[i], item, depth + 1); !s) return s;
      }
      return Status();
    }
    case Value::Type::Map: {
      const Value::Map& entries = *v.AsMap();
      if (depth >= kMaxDepth) return Invalid(where.Render() + ": nested deeper than " + std::to_string(kMaxDepth) + " levels");
      if (entries.size() > kMaxFields) {
        return Invalid(where.Render() + ": " + std::to_string(entries.size()) + " entries; the limit is " +
                       std::to_string(kMaxFields));
      }
      w.Map(static_cast<std::uint32_t>(entries.size()));
      for (std::size_t i = 0; i < entries.size(); ++i) {
        const std::string& key = entries[i].first;
        if (Status s = CheckKey(key, where); !s) return s;
        for (std::size_t j = 0; j < i; ++j) {
          if (entries[j].first == key) return Invalid(where.Render() + ": key \"" + key + "\" appears twice");
        }
        Path item{&where, key, 0, false};
        w.Str(key);
        if (Status s = PackChecked(w, entries[i].second, item, depth + 1); !s) return s;
      }
      return Status();
    }
    default:
      w.Any(v);
      return Status();
  }
}

namespace {

Value FromObject(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::BOOLEAN: return Value(o.via.boolean);
    case msgpack::type::POSITIVE_INTEGER: return Value(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER: return Value(o.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return Value(o.via.f64);
    case msgpack::type::STR: return Value(std::string(o.via.str.ptr, o.via.str.size));
    case msgpack::type::BIN: return Value(std::string(o.via.bin.ptr, o.via.bin.size));
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
        if (kv.key.type != msgpack::type::STR) continue;  // protocol.md: keys are strings
        entries.emplace_back(std::string(kv.key.via.str.ptr, kv.key.via.str.size), FromObject(kv.val));
      }
      return Value(std::move(entries));
    }
    default: return Value();  // nil, and extension types the protocol never sends
  }
}

}  // namespace

std::optional<Value> Decode(const void* data, std::size_t size) {
  try {
    msgpack::object_handle oh = msgpack::unpack(static_cast<const char*>(data), size);
    return FromObject(oh.get());
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace detail
}  // namespace engine_bridge
