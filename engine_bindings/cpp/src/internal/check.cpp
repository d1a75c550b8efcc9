#include "check.hpp"

#include <array>
#include <cmath>
#include <vector>

namespace engine_bridge::detail {

Status Invalid(std::string message) { return Status(ErrorCode::InvalidArgument, std::move(message)); }

std::string Prefix(std::string_view api, std::string_view rest) {
  std::string out(api);
  out += ": ";
  out += rest;
  return out;
}

std::string NumberText(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "infinity" : "-infinity";
  return std::to_string(d);
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

Status CheckString(std::string_view s, const Path& where, const Limits& limits) {
  std::optional<std::size_t> chars = Utf8Chars(s);
  if (!chars) return Invalid(where.Render() + ": not valid UTF-8");
  if (*chars > limits.max_string_chars) {
    return Invalid(where.Render() + ": string of " + std::to_string(*chars) + " chars; the limit is " +
                   std::to_string(limits.max_string_chars));
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

namespace {

// A container inside an event: within the depth and entry limits.
Status CheckContainer(std::size_t size, const char* what, const Path& where, std::size_t depth, const Limits& limits) {
  if (depth >= limits.max_depth) {
    return Invalid(where.Render() + ": nested deeper than " + std::to_string(limits.max_depth) + " levels");
  }
  if (size > limits.max_fields) {
    return Invalid(where.Render() + ": " + std::to_string(size) + " " + what + "; the limit is " +
                   std::to_string(limits.max_fields));
  }
  return Status();
}

}  // namespace

Status PackChecked(Writer& w, const Value& v, const Path& where, std::size_t depth, const Limits& limits) {
  switch (v.type()) {
    case Value::Type::Double: {
      double d = *v.AsDouble();
      if (!std::isfinite(d)) return Invalid(where.Render() + ": " + NumberText(d) + " is not a finite number");
      w.Double(d);
      return Status();
    }
    case Value::Type::UInt:  // protocol.md section 2: every integer within the signed 64-bit range
      return Invalid(where.Render() + ": " + std::to_string(*v.AsUInt()) + " is outside the signed 64-bit range");
    case Value::Type::String: {
      if (Status s = CheckString(*v.AsString(), where, limits); !s) return s;
      w.Str(*v.AsString());
      return Status();
    }
    case Value::Type::Array: {
      const Value::Array& items = *v.AsArray();
      if (Status s = CheckContainer(items.size(), "items", where, depth, limits); !s) return s;
      w.Array(static_cast<std::uint32_t>(items.size()));
      for (std::size_t i = 0; i < items.size(); ++i) {
        Path item{&where, {}, i, true};
        if (Status s = PackChecked(w, items[i], item, depth + 1, limits); !s) return s;
      }
      return Status();
    }
    case Value::Type::Map: {
      const Value::Map& entries = *v.AsMap();
      if (Status s = CheckContainer(entries.size(), "entries", where, depth, limits); !s) return s;
      w.Map(static_cast<std::uint32_t>(entries.size()));
      for (std::size_t i = 0; i < entries.size(); ++i) {
        const std::string& key = entries[i].first;
        if (Status s = CheckKey(key, where); !s) return s;
        for (std::size_t j = 0; j < i; ++j) {
          if (entries[j].first == key) return Invalid(where.Render() + ": key \"" + key + "\" appears twice");
        }
        Path item{&where, key, 0, false};
        w.Str(key);
        if (Status s = PackChecked(w, entries[i].second, item, depth + 1, limits); !s) return s;
      }
      return Status();
    }
    default:
      w.Any(v);
      return Status();
  }
}

Status CheckText(std::string_view api, const char* name, Text t, std::size_t min_chars, std::size_t max_chars) {
  if (t.is_null()) return Invalid(Prefix(api, std::string(name) + " is null"));
  std::optional<std::size_t> chars = Utf8Chars(t.view());
  if (!chars) return Invalid(Prefix(api, std::string(name) + " is not valid UTF-8"));
  if (*chars < min_chars || *chars > max_chars) {
    return Invalid(Prefix(api, std::string(name) + " must be " + std::to_string(min_chars) + ".." +
                                   std::to_string(max_chars) + " chars, got " + std::to_string(*chars)));
  }
  return Status();
}

Status CheckPart(std::string_view api, const char* name, Text t) {
  if (Status s = CheckText(api, name, t, 1, kMaxPartChars); !s) return s;
  if (t.view().find(':') != std::string_view::npos) return Invalid(Prefix(api, std::string(name) + " must not contain ':'"));
  return Status();
}

bool Present(Text t) noexcept { return !t.is_null() && !t.empty(); }

Status CheckFinite(std::string_view api, const char* name, double d) {
  if (std::isfinite(d)) return Status();
  return Invalid(Prefix(api, std::string(name) + " must be a finite number, got " + NumberText(d)));
}

Status CheckId(std::string_view api, const char* name, std::string_view id, const Limits& limits) {
  if (id.empty() || id.size() > limits.max_event_id_chars) {
    return Invalid(Prefix(api, std::string(name) + " must be 1.." + std::to_string(limits.max_event_id_chars) +
                                   " chars, got " + std::to_string(id.size())));
  }
  for (char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.' || c == ':';
    if (!ok) return Invalid(Prefix(api, std::string(name) + " has characters outside A-Z a-z 0-9 - _ . :"));
  }
  return Status();
}

// Receipts and signatures travel as standard base64 (protocol.md 4.9); staq refuses anything else, and the
// purchase would then wait for a verdict forever.
Status CheckBase64(std::string_view api, const char* name, std::string_view s) {
  std::size_t padding = 0;
  for (char c : s) {
    const bool alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (c == '=') {
      ++padding;
    } else if (!alphabet || padding > 0) {
      return Invalid(Prefix(api, std::string(name) + " must be standard base64 (A-Z a-z 0-9 + /, padded with =)"));
    }
  }
  if (s.size() % 4 != 0 || padding > 2) {
    return Invalid(Prefix(api, std::string(name) + " must be standard base64: its length must be a multiple of 4, "
                                   "padded with at most two ="));
  }
  return Status();
}

Status CheckCurrency(std::string_view api, Text currency) {
  if (currency.is_null()) return Invalid(Prefix(api, "currency is null"));
  std::string_view c = currency.view();
  bool ok = c.size() == 3;
  for (char ch : c) ok = ok && ch >= 'A' && ch <= 'Z';
  if (!ok) return Invalid(Prefix(api, "currency must be an ISO 4217 code like \"USD\", got \"" + std::string(c.substr(0, 16)) + "\""));
  return Status();
}

Status NotInEnum(std::string_view api, const char* name) {
  return Invalid(Prefix(api, std::string(name) + " is not a value of its enum"));
}

Status CheckJoinedId(std::string_view api, std::string_view category, std::string_view id) {
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    std::size_t colon = id.find(':', start);
    parts.push_back(id.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  for (std::string_view p : parts) {
    if (p.empty() || p.size() > kMaxPartChars) {
      return Invalid(Prefix(api, "event_id \"" + std::string(id.substr(0, 200)) + "\": every part must be 1.." +
                                     std::to_string(kMaxPartChars) + " chars"));
    }
  }
  auto shape = [&](std::size_t lo, std::size_t hi, std::initializer_list<std::string_view> first,
                   const char* rule) -> Status {
    bool first_ok = first.size() == 0;
    for (std::string_view f : first) first_ok = first_ok || parts[0] == f;
    if (parts.size() < lo || parts.size() > hi || !first_ok) {
      return Invalid(Prefix(api, "event_id \"" + std::string(id.substr(0, 200)) + "\" must be " + rule));
    }
    return Status();
  };
  if (category == "design") return shape(1, 5, {}, "1 to 5 parts joined by ':'");
  if (category == "business") return shape(2, 2, {}, "itemType:itemId");
  if (category == "progression") return shape(2, 4, {"Start", "Fail", "Complete"}, "Start|Fail|Complete then 1 to 3 parts");
  if (category == "resource") return shape(4, 4, {"Source", "Sink"}, "Source|Sink:currency:itemType:itemId");
  return Status();
}

namespace {

// The required fields of each category and the kind each must have (protocol.md section 5). In
// EventCategory order.
enum class Kind { Str, Int, Number, Map };
struct Required {
  std::array<std::pair<std::string_view, Kind>, 4> fields;
  std::size_t count;
};
constexpr Required kRequired[] = {
    {{{{"event_id", Kind::Str}}}, 1},
    {{{{"event_id", Kind::Str}, {"amount", Kind::Int}, {"currency", Kind::Str}}}, 3},
    {{{{"event_id", Kind::Str}}}, 1},
    {{{{"event_id", Kind::Str}, {"amount", Kind::Number}}}, 2},
    {{{{"severity", Kind::Str}, {"message", Kind::Str}}}, 2},
    {{{{"ad_action", Kind::Str}, {"ad_type", Kind::Str}, {"ad_sdk_name", Kind::Str}, {"ad_placement", Kind::Str}}}, 4},
    {{{{"name", Kind::Str}}}, 1},
    {{{{"ad_network_name", Kind::Str}, {"ad_network_version", Kind::Str}, {"impression_data", Kind::Map}}}, 3},
};
static_assert(std::size(kRequired) == std::size(kCategories));

}  // namespace

Status CheckCategoryFields(std::string_view api, EventCategory category, const Fields& fields) {
  const std::optional<std::string_view> name = WireName(category, kCategories);
  if (!name) return NotInEnum(api, "category");
  const Required& rule = kRequired[static_cast<std::size_t>(category)];
  for (std::size_t i = 0; i < rule.count; ++i) {
    const auto& [field, kind] = rule.fields[i];
    const Value* v = nullptr;
    for (const auto& [k, value] : fields) v = k == field ? &value : v;
    if (v == nullptr) return Invalid(Prefix(api, "fields." + std::string(field) + " is required for " + std::string(*name)));
    const bool ok = kind == Kind::Str   ? v->AsString() != nullptr
                    : kind == Kind::Int ? v->type() == Value::Type::Int || v->type() == Value::Type::UInt
                    : kind == Kind::Map ? v->AsMap() != nullptr
                                        : v->AsDouble().has_value();
    if (!ok) {
      return Invalid(Prefix(api, "fields." + std::string(field) + " must be " +
                                     (kind == Kind::Str   ? "a string"
                                      : kind == Kind::Int ? "an integer"
                                      : kind == Kind::Map ? "a map"
                                                          : "a number")));
    }
    if (field == "event_id") {
      if (Status s = CheckJoinedId(api, *name, *v->AsString()); !s) return s;
    }
  }
  return Status();
}

Status CheckGameInfo(const GameInfo& game) {
  for (const InfoField& f : InfoFields(game)) {
    if (f.value->empty()) {
      if (f.required) return Invalid(std::string("Connect: GameInfo.") + f.name + " is required");
      continue;
    }
    std::optional<std::size_t> chars = Utf8Chars(*f.value);
    if (!chars) return Invalid(std::string("Connect: GameInfo.") + f.name + " is not valid UTF-8");
    if (*chars > f.max_chars) {
      return Invalid(std::string("Connect: GameInfo.") + f.name + " has " + std::to_string(*chars) +
                     " chars; the limit is " + std::to_string(f.max_chars));
    }
  }
  return Status();
}

}  // namespace engine_bridge::detail
