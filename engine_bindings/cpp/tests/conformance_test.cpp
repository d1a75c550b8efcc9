// The binding's wire code against the shared conformance vectors (engine_bindings/conformance/README.md):
// its msgpack writer and reader, its request builders, its reply and publication readers, its local checks.
// Run by tests/bindings/test_cpp.py; no daemon needed, the vectors hold the daemon's own verdicts.
//
//   engine_bridge_conformance PATH/TO/vectors.json
//
// Prints one line per failed check, a line per section, and ends with "N passed, M failed".
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "check.hpp"
#include "msgpack_reader.hpp"
#include "msgpack_writer.hpp"
#include "wire.hpp"

namespace eb = engine_bridge;
namespace detail = engine_bridge::detail;

namespace {

int g_passed = 0, g_failed = 0;

void Check(bool ok, const std::string& name, const std::string& detail = "") {
  (ok ? g_passed : g_failed)++;
  if (!ok) std::cout << "FAIL " << name << (detail.empty() ? "" : ": " + detail) << std::endl;
}

// --- a small JSON reader: what the vectors file needs, no more ----------------------------------------------

struct Json {
  enum class Kind { Null, Bool, Number, String, Array, Object } kind = Kind::Null;
  bool boolean = false;
  std::string text;  // a number's digits, or a string
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;

  const Json* Get(const std::string& key) const {
    for (const auto& [k, v] : members) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  const Json& operator[](const std::string& key) const {
    static const Json null;
    const Json* v = Get(key);
    return v ? *v : null;
  }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& s) : s_(s) {}
  Json Parse() {
    Json v = Value();
    Space();
    if (pos_ != s_.size()) Fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void Fail(const char* what) {
    std::cerr << "vectors.json: " << what << " at byte " << pos_ << std::endl;
    std::exit(2);
  }
  void Space() {
    while (pos_ < s_.size() && std::strchr(" \t\r\n", s_[pos_])) ++pos_;
  }
  bool Eat(char c) {
    Space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  Json Value() {
    Space();
    if (pos_ >= s_.size()) Fail("unexpected end");
    Json v;
    const char c = s_[pos_];
    if (c == '{') {
      v.kind = Json::Kind::Object;
      ++pos_;
      if (!Eat('}')) {
        do {
          Space();
          std::string key = String();
          if (!Eat(':')) Fail("':' expected");
          v.members.emplace_back(std::move(key), Value());
        } while (Eat(','));
        if (!Eat('}')) Fail("'}' expected");
      }
    } else if (c == '[') {
      v.kind = Json::Kind::Array;
      ++pos_;
      if (!Eat(']')) {
        do v.items.push_back(Value());
        while (Eat(','));
        if (!Eat(']')) Fail("']' expected");
      }
    } else if (c == '"') {
      v.kind = Json::Kind::String;
      v.text = String();
    } else if (s_.compare(pos_, 4, "true") == 0 || s_.compare(pos_, 5, "false") == 0) {
      v.kind = Json::Kind::Bool;
      v.boolean = c == 't';
      pos_ += v.boolean ? 4 : 5;
    } else if (s_.compare(pos_, 4, "null") == 0) {
      pos_ += 4;
    } else {
      v.kind = Json::Kind::Number;
      const std::size_t start = pos_;
      while (pos_ < s_.size() && std::strchr("+-0123456789.eE", s_[pos_])) ++pos_;
      if (start == pos_) Fail("a value expected");
      v.text = s_.substr(start, pos_ - start);
    }
    return v;
  }
  void Utf8(std::uint32_t cp, std::string& out) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  std::uint32_t Hex4() {
    if (pos_ + 4 > s_.size()) Fail("short \\u escape");
    const std::uint32_t cp = static_cast<std::uint32_t>(std::stoul(s_.substr(pos_, 4), nullptr, 16));
    pos_ += 4;
    return cp;
  }
  std::string String() {
    if (pos_ >= s_.size() || s_[pos_] != '"') Fail("string expected");
    ++pos_;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) Fail("bad escape");
      c = s_[pos_++];
      switch (c) {
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp = Hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && s_.compare(pos_, 2, "\\u") == 0) {
            pos_ += 2;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (Hex4() - 0xDC00);
          }
          Utf8(cp, out);
          break;
        }
        default: out += c;  // \" \\ \/
      }
    }
    if (pos_ >= s_.size()) Fail("unterminated string");
    ++pos_;
    return out;
  }
  const std::string& s_;
  std::size_t pos_ = 0;
};

// --- the tagged value trees -------------------------------------------------------------------------------

std::string FromBase64(const std::string& in) {
  static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t buf = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    buf = (buf << 6) | static_cast<std::uint32_t>(kAlphabet.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buf >> bits) & 0xFF);
    }
  }
  return out;
}

std::string FromHex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

std::string ToHex(const std::string& bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

// A tree as a Value; `float32` is set when the tree holds a float 32, which a Value cannot keep apart from a
// float 64 (the binding reads float 32 as a double, and never writes one).
eb::Value Tree(const Json& j, bool& float32) {
  switch (j.kind) {
    case Json::Kind::Null: return eb::Value();
    case Json::Kind::Bool: return eb::Value(j.boolean);
    case Json::Kind::Number: return eb::Value(static_cast<std::int64_t>(std::stoll(j.text)));
    case Json::Kind::String: return eb::Value(j.text);
    case Json::Kind::Array: {
      eb::Value::Array items;
      for (const Json& item : j.items) items.push_back(Tree(item, float32));
      return eb::Value(std::move(items));
    }
    case Json::Kind::Object: break;
  }
  const auto& [tag, inner] = j.members.front();
  if (tag == "$map") {
    eb::Value::Map entries;
    for (const Json& pair : inner.items) entries.emplace_back(pair.items[0].text, Tree(pair.items[1], float32));
    return eb::Value(std::move(entries));
  }
  if (tag == "$bin") return eb::Value(eb::Value::Bytes{FromBase64(inner.text)});
  if (tag == "$int") {
    if (inner.text[0] == '-') return eb::Value(static_cast<std::int64_t>(std::stoll(inner.text)));
    return eb::Value(static_cast<std::uint64_t>(std::stoull(inner.text)));
  }
  float32 = float32 || tag == "$float32";
  if (inner.kind == Json::Kind::String) {  // "nan", "inf", "-inf"
    if (inner.text == "nan") return eb::Value(std::numeric_limits<double>::quiet_NaN());
    return eb::Value(inner.text == "inf" ? HUGE_VAL : -HUGE_VAL);
  }
  return eb::Value(std::strtod(inner.text.c_str(), nullptr));
}

eb::Value Tree(const Json& j) {
  bool float32 = false;
  return Tree(j, float32);
}

// Equal, kinds included; maps in the same order when `ordered`, else as sets of keys (recursively).
bool Same(const eb::Value& a, const eb::Value& b, bool ordered) {
  if (a.type() != b.type()) return false;
  if (a.type() == eb::Value::Type::Double) {
    const double x = *a.AsDouble(), y = *b.AsDouble();
    return (std::isnan(x) && std::isnan(y)) || (x == y && std::signbit(x) == std::signbit(y));
  }
  if (const eb::Value::Array* items = a.AsArray()) {
    const eb::Value::Array& other = *b.AsArray();
    if (items->size() != other.size()) return false;
    for (std::size_t i = 0; i < items->size(); ++i) {
      if (!Same((*items)[i], other[i], ordered)) return false;
    }
    return true;
  }
  if (const eb::Value::Map* entries = a.AsMap()) {
    const eb::Value::Map& other = *b.AsMap();
    if (entries->size() != other.size()) return false;
    for (std::size_t i = 0; i < entries->size(); ++i) {
      const auto& [key, value] = (*entries)[i];
      const eb::Value* match = ordered ? (other[i].first == key ? &other[i].second : nullptr) : b.Find(key);
      if (match == nullptr || !Same(value, *match, ordered)) return false;
    }
    return true;
  }
  return a == b;
}

std::string Show(const eb::Value& v) { return ToHex(detail::Pack(v)); }

std::string Str(const eb::Value& map, std::string_view key) { return std::string(detail::StrField(map, key)); }

// --- the sections -------------------------------------------------------------------------------------------

// Every hex decodes to its tree, and (unless the tree holds a float 32) the tree encodes to exactly its hex.
void CheckTrees(const std::string& section, const Json& vectors) {
  const int before = g_failed;
  int count = 0;
  for (const Json& v : vectors.items) {
    ++count;
    bool float32 = false;
    const eb::Value tree = Tree(v["value"], float32);
    const std::string frame = FromHex(v["hex"].text);
    const std::optional<eb::Value> decoded = detail::Decode(frame.data(), frame.size());
    Check(decoded && Same(*decoded, tree, true), section + " reader: " + v["name"].text,
          decoded ? Show(*decoded) : "not msgpack");
    if (!float32) {
      Check(ToHex(detail::Pack(tree)) == v["hex"].text, section + " writer: " + v["name"].text, Show(tree));
    }
  }
  std::cout << section << ": " << count << " vectors, " << (g_failed - before) << " failed" << std::endl;
}

// The inputs a builder takes, read back from a request vector's value.
eb::EventOptions OptionsOf(const eb::Value& event) {
  eb::EventOptions o;
  o.id = Str(event, "id");
  o.user_id = Str(event, "user_id");
  if (const eb::Value* ts = event.Find("ts")) o.timestamp_ms = ts->AsInt();
  return o;
}

// One event as the binding encodes it from the event's inputs; nothing when its checks refuse them.
std::optional<std::string> EncodeEvent(const eb::Value& event, const detail::Limits& limits, std::string* why = nullptr) {
  const eb::Value* fields = event.Find("fields");
  std::size_t category = std::size(detail::kCategories);
  for (std::size_t i = 0; i < std::size(detail::kCategories); ++i) {
    if (detail::kCategories[i] == Str(event, "category")) category = i;
  }
  const eb::Fields given = fields && fields->AsMap() ? *fields->AsMap() : eb::Fields();
  const eb::EventOptions options = OptionsOf(event);
  eb::Status s = detail::CheckCategoryFields("Track", static_cast<eb::EventCategory>(category), given);
  std::string out;
  if (s) s = detail::EncodeEvent("Track", Str(event, "category"), {}, given, &options, limits, out);
  if (!s) {
    if (why != nullptr) *why = s.message();
    return std::nullopt;
  }
  return out;
}

eb::SessionOptions SessionOptionsOf(const eb::Value& request) {
  eb::SessionOptions o;
  o.user_id = Str(request, "user_id");
  o.user_ip = Str(request, "user_ip");
  if (const eb::Value* ts = request.Find("ts")) o.timestamp_ms = ts->AsInt();
  return o;
}

eb::ConsentState ConsentStateOf(const eb::Value& request, const char* purpose) {
  const std::string state = Str(request, purpose);
  return state.empty() ? eb::ConsentState::Unchanged
                       : state == "granted" ? eb::ConsentState::Granted : eb::ConsentState::Denied;
}

eb::Consent ConsentOf(const eb::Value& request) {
  eb::Consent c;
  c.analytics = ConsentStateOf(request, "analytics");
  c.ip_ads = ConsentStateOf(request, "ip_ads");
  c.user_id = Str(request, "user_id");
  return c;
}

eb::Purchase PurchaseOf(const eb::Value& request) {
  eb::Purchase p;
  p.id = Str(request, "id");
  p.store = Str(request, "store") == "googleplay" ? eb::PurchaseStore::GooglePlay : eb::PurchaseStore::Apple;
  p.receipt = Str(request, "receipt");
  p.signature = Str(request, "signature");
  p.status = Str(request, "status");
  p.comment = Str(request, "comment");
  if (const eb::Value* price = request.Find("price_usd")) p.price_usd = price->AsDouble();
  if (const eb::Value* meta = request.Find("metadata"); meta && meta->AsMap()) p.metadata = *meta->AsMap();
  return p;
}

eb::GameInfo GameOf(const eb::Value& hello) {
  eb::GameInfo g;
  g.game_build = Str(hello, "game_build");
  g.device_id = Str(hello, "device_id");
  g.user_id = Str(hello, "user_id");
  g.engine = Str(hello, "engine");
  g.engine_version = Str(hello, "engine_version");
  g.platform = Str(hello, "platform");
  g.os_version = Str(hello, "os_version");
  g.device = Str(hello, "device");
  g.manufacturer = Str(hello, "manufacturer");
  return g;
}

// What this binding builds for a request vector's inputs: the frame, or nothing for a type it never sends
// (and `refused` holds the message when its checks refuse the inputs).
std::optional<std::string> Build(const eb::Value& request, std::string& refused) {
  const std::string type = Str(request, "type");
  const std::uint32_t rid = static_cast<std::uint32_t>(detail::UIntField(request, "rid"));
  const detail::Limits limits;
  detail::Body body;
  eb::Status s;
  if (type == "hello") {
    const eb::GameInfo game = GameOf(request);
    s = detail::CheckGameInfo(game);
    if (s) body = detail::HelloBody(game);
  } else if (type == "event") {
    std::optional<std::string> event = EncodeEvent(*request.Find("event"), limits, &refused);
    if (!event) return std::string();
    detail::Writer w(body.bytes);
    w.Str("event");
    w.Raw(*event);
    body.pairs = 1;
  } else if (type == "events") {
    const eb::Value::Array& events = *request.Find("events")->AsArray();
    std::string frame = detail::BatchHead(rid, static_cast<std::uint32_t>(events.size()));
    for (const eb::Value& e : events) {
      std::optional<std::string> event = EncodeEvent(e, limits, &refused);
      if (!event) return std::string();
      frame += *event;
    }
    return frame;
  } else if (type == "session_start" || type == "session_end") {
    s = detail::SessionBody("session", SessionOptionsOf(request), body);
  } else if (type == "flush") {
    // no fields
  } else if (type == "purchase") {
    std::string id;
    s = detail::PurchaseBody("VerifyPurchase", PurchaseOf(request), limits, id, body);
  } else if (type == "consent") {
    s = detail::ConsentBody("SetConsent", ConsentOf(request), body);
  } else if (type == "forget") {
    s = detail::ForgetBody("Forget", Str(request, "user_id"), body);
  } else {
    return std::nullopt;  // ping, stats, configs: sent by tools, not by this binding
  }
  if (!s) {
    refused = s.message();
    return std::string();
  }
  return detail::RequestFrame(type, rid, body);
}

// The binding's constants in place of the vector's (README: a binding puts its own there).
eb::Value WithOwnBinding(const eb::Value& request) {
  eb::Value::Map map = *request.AsMap();
  for (auto& [key, value] : map) {
    if (key == "binding") value = eb::Value(eb::kBindingName);
    if (key == "binding_version") value = eb::Value(eb::kBindingVersion);
  }
  return eb::Value(std::move(map));
}

void CheckBuilders(const Json& requests) {
  int built = 0, skipped = 0;
  for (const Json& v : requests.items) {
    const eb::Value request = Tree(v["value"]);
    std::string refused;
    std::optional<std::string> frame = Build(request, refused);
    if (!frame) {
      ++skipped;
      continue;
    }
    ++built;
    const std::optional<eb::Value> decoded = frame->empty() ? std::nullopt : detail::Decode(frame->data(), frame->size());
    const eb::Value expected = Str(request, "type") == "hello" ? WithOwnBinding(request) : request;
    Check(decoded && Same(*decoded, expected, false), "builder: " + v["name"].text,
          refused.empty() ? (decoded ? Show(*decoded) : "") : "refused: " + refused);
  }
  std::cout << "request builders: " << built << " built, " << skipped << " types this binding never sends" << std::endl;
}

void CheckReplies(const Json& replies) {
  int count = 0;
  for (const Json& v : replies.items) {
    ++count;
    const std::string frame = FromHex(v["hex"].text);
    const std::optional<eb::Value> decoded = detail::Decode(frame.data(), frame.size());
    const eb::Value expected = Tree(v["value"]);
    const std::string name = "reply parser: " + v["name"].text;
    if (!decoded) {
      Check(false, name, "not msgpack");
      continue;
    }
    const eb::Value& r = *decoded;
    const std::string type = Str(expected, "type");
    const eb::Reply reply = detail::ReadReply(r);
    Check(reply.type == type && reply.ok == (type != "error") && Same(reply.body, expected, true), name + ": the Reply");
    if (type == "welcome") {
      const detail::Limits l = detail::ReadLimits(r);
      const eb::Value& want = *expected.Find("limits");
      Check(l.max_message_bytes == detail::UIntField(want, "max_message_bytes") &&
                l.max_batch_events == detail::UIntField(want, "max_batch_events") &&
                l.max_event_id_chars == detail::UIntField(want, "max_event_id_chars") &&
                l.max_fields == detail::UIntField(want, "max_fields") &&
                l.max_string_chars == detail::UIntField(want, "max_string_chars") &&
                l.max_depth == detail::UIntField(want, "max_depth"),
            name + ": the limits");
    } else if (type == "ack") {
      const detail::Ack ack = detail::ReadAck(r);
      const eb::Value::Array& rejected = *expected.Find("rejected")->AsArray();
      const eb::Value::Array& invalid = *expected.Find("invalid")->AsArray();
      bool same = ack.stored == detail::UIntField(expected, "stored") &&
                  ack.duplicates == detail::UIntField(expected, "duplicates") && ack.rejected == rejected.size() &&
                  (rejected.empty() || ack.last_rejection == Str(rejected.back(), "message")) &&
                  ack.refusals.size() == invalid.size();
      for (std::size_t i = 0; same && i < invalid.size(); ++i) {
        same = ack.refusals[i].event_id == Str(invalid[i], "id") && ack.refusals[i].provider == Str(invalid[i], "provider") &&
               ack.refusals[i].rule == Str(invalid[i], "message");
      }
      Check(same, name + ": counts, rejections and provider refusals");
    } else if (type == "purchase") {
      const std::optional<eb::PurchaseResult> verdict = detail::ReadVerdict(Str(r, "id"), r, "apple");
      const eb::Value* is_valid = expected.Find("is_valid");
      if (is_valid->is_nil()) {
        Check(!verdict, name + ": pending, no verdict");
      } else {
        Check(verdict && verdict->ok && verdict->is_valid == *is_valid->AsBool() &&
                  verdict->is_duplicate == *expected.Find("is_duplicate")->AsBool() &&
                  verdict->reason == Str(expected, "reason") && verdict->id == Str(expected, "id"),
              name + ": the verdict");
      }
    } else if (type == "error") {
      Check(reply.error_code == Str(expected, "code") && reply.message == Str(expected, "message"),
            name + ": code and message");
    }
  }
  std::cout << "reply parsers: " << count << " replies" << std::endl;
}

void CheckPublications(const Json& publications) {
  for (const Json& v : publications.items) {
    const std::string frame = FromHex(v["hex"].text);
    const std::optional<eb::Value> decoded = detail::Decode(frame.data(), frame.size());
    const eb::Value expected = Tree(v["value"]);
    const std::string name = "publication: " + v["name"].text;
    if (!decoded) {
      Check(false, name, "not msgpack");
      continue;
    }
    const detail::Publication p = detail::ReadPublication(*decoded);
    Check(p.version == detail::UIntField(expected, "version") &&
              Same(eb::Value(p.values), *expected.Find("values"), true), name + ": version and values");
    if (v["topic"].text.rfind(std::string(detail::kPurchasePrefix), 0) == 0) {
      for (const auto& [id, entry] : p.values) {
        const std::optional<eb::PurchaseResult> r = detail::ReadVerdict(id, entry, {});
        Check(r && r->ok && r->is_valid == *entry.Find("is_valid")->AsBool() && r->store == Str(entry, "store") &&
                  r->verified_at == entry.Find("verified_at")->AsInt(),
              name + ": the verdict on " + id);
      }
    }
  }
}

// The binding's own checks refuse exactly what the daemon refuses, for every input the binding can express.
void CheckLimits(const Json& limits) {
  const detail::Limits defaults;
  const Json& values = limits["values"];  // plain JSON numbers
  const auto value = [&](const char* name) { return std::stoull(values[name].text); };
  Check(values.members.size() == 6 && value("max_message_bytes") == defaults.max_message_bytes &&
            value("max_batch_events") == defaults.max_batch_events &&
            value("max_event_id_chars") == defaults.max_event_id_chars && value("max_fields") == defaults.max_fields &&
            value("max_string_chars") == defaults.max_string_chars && value("max_depth") == defaults.max_depth,
        "limits: the binding's defaults are protocol.md's");
  int compared = 0, skipped = 0;
  for (const Json& v : limits["cases"].items) {
    const eb::Value request = Tree(v["value"]);
    const Json& verdict = v["verdict"];
    const std::string type = Str(request, "type");
    const bool whole_refused = verdict["type"].text == "error";
    std::vector<eb::Value> events;  // the events whose fate is each one's own
    if (type == "event" && !whole_refused) events.push_back(*request.Find("event"));
    if (type == "events" && !whole_refused) events = *request.Find("events")->AsArray();
    if (!events.empty()) {
      for (std::size_t i = 0; i < events.size(); ++i) {
        const eb::Value& event = events[i];
        const eb::Value* ts = event.Find("ts");
        const bool expressible = ts && ts->type() == eb::Value::Type::Int &&
                                 std::find(std::begin(detail::kCategories), std::end(detail::kCategories),
                                           Str(event, "category")) != std::end(detail::kCategories);
        if (!expressible) {  // a uint64 time, or a category outside the enum
          ++skipped;
          continue;
        }
        bool rejected = false;
        for (const Json& r : verdict["rejected"].items) rejected = rejected || std::stoul(r["index"].text) == i;
        std::string why;
        const bool refused = !EncodeEvent(event, defaults, &why);
        ++compared;
        Check(refused == rejected, "local checks: " + v["name"].text + " [" + std::to_string(i) + "]",
              refused ? "refused locally: " + why : "accepted locally, the daemon rejects it");
      }
      continue;
    }
    if (type == "hello" && request.Find("protocol_min") != nullptr) {  // this binding always offers protocol 1
      ++skipped;
      continue;
    }
    std::string refused;
    std::optional<std::string> frame = Build(request, refused);
    if (!frame || type == "events" || type == "event") {  // batch-level limits: the binding never builds those
      ++skipped;
      continue;
    }
    ++compared;
    Check(!refused.empty() == whole_refused, "local checks: " + v["name"].text,
          refused.empty() ? "accepted locally, the daemon refuses it" : "refused locally: " + refused);
  }
  std::cout << "local checks: " << compared << " compared with the daemon's verdicts, " << skipped
            << " inputs this binding cannot express" << std::endl;

  // The checks follow the limits they are given (a welcome's), not constants.
  detail::Limits tight;
  tight.max_string_chars = 10;
  tight.max_fields = 2;
  const eb::EventOptions options;
  std::string out;
  Check(detail::EncodeEvent("Track", "custom", {}, {{"name", "n"}, {"s", "0123456789"}}, &options, tight, out).ok() &&
            !detail::EncodeEvent("Track", "custom", {}, {{"name", "n"}, {"s", "0123456789a"}}, &options, tight, out).ok() &&
            !detail::EncodeEvent("Track", "custom", {}, {{"name", "n"}, {"a", 1}, {"b", 2}}, &options, tight, out).ok(),
        "local checks follow the limits they are given");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: engine_bridge_conformance PATH/TO/vectors.json\n";
    return 2;
  }
  std::ifstream file(argv[1], std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  const std::string json = text.str();
  const Json vectors = JsonParser(json).Parse();
  Check(vectors["format"].text == "1", "vectors format 1");
  CheckTrees("msgpack", vectors["msgpack"]);
  CheckTrees("requests", vectors["requests"]);
  CheckTrees("replies", vectors["replies"]);
  CheckTrees("publications", vectors["publications"]);
  CheckTrees("limit cases", vectors["limits"]["cases"]);
  CheckBuilders(vectors["requests"]);
  CheckReplies(vectors["replies"]);
  CheckPublications(vectors["publications"]);
  CheckLimits(vectors["limits"]);
  std::cout << g_passed << " passed, " << g_failed << " failed" << std::endl;
  return g_failed == 0 ? 0 : 1;
}
