#include "wire.hpp"

#include <chrono>
#include <random>

#include "check.hpp"
#include "msgpack_writer.hpp"

namespace engine_bridge::detail {

Limits SharedLimits::Get() const noexcept {
  Limits l;
  l.max_message_bytes = v_[0].load(std::memory_order_relaxed);
  l.max_batch_events = v_[1].load(std::memory_order_relaxed);
  l.max_event_id_chars = v_[2].load(std::memory_order_relaxed);
  l.max_fields = v_[3].load(std::memory_order_relaxed);
  l.max_string_chars = v_[4].load(std::memory_order_relaxed);
  l.max_depth = v_[5].load(std::memory_order_relaxed);
  return l;
}

void SharedLimits::Set(const Limits& l) noexcept {
  v_[0].store(l.max_message_bytes, std::memory_order_relaxed);
  v_[1].store(l.max_batch_events, std::memory_order_relaxed);
  v_[2].store(l.max_event_id_chars, std::memory_order_relaxed);
  v_[3].store(l.max_fields, std::memory_order_relaxed);
  v_[4].store(l.max_string_chars, std::memory_order_relaxed);
  v_[5].store(l.max_depth, std::memory_order_relaxed);
}

void NewUuid(char (&out)[36]) {
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count())};
    return std::mt19937_64(seq);
  }();
  std::uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t pos = 0;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out[pos++] = '-';
    const std::uint64_t word = i < 16 ? hi : lo;
    out[pos++] = kHex[(word >> (60 - 4 * (i % 16))) & 0xF];
  }
}

std::string NewUuid() {
  char uuid[36];
  NewUuid(uuid);
  return std::string(uuid, sizeof uuid);
}

std::int64_t NowMs() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::array<InfoField, 9> InfoFields(const GameInfo& g) noexcept {
  return {{{"engine", &g.engine, true, 64},
           {"engine_version", &g.engine_version, false, 64},
           {"game_build", &g.game_build, true, 32},
           {"device_id", &g.device_id, true, 128},
           {"user_id", &g.user_id, false, kMaxUserIdChars},
           {"platform", &g.platform, false, 32},
           {"os_version", &g.os_version, false, 64},
           {"device", &g.device, false, 64},
           {"manufacturer", &g.manufacturer, false, 64}}};
}

namespace {

void AddStr(Body& body, std::string_view key, std::string_view value) {
  Writer w(body.bytes);
  w.Str(key);
  w.Str(value);
  ++body.pairs;
}

void AddInt(Body& body, std::string_view key, std::int64_t value) {
  Writer w(body.bytes);
  w.Str(key);
  w.Int(value);
  ++body.pairs;
}

}  // namespace

std::string RequestFrame(std::string_view type, std::uint32_t rid, const Body& body) {
  std::string frame;
  frame.reserve(16 + body.bytes.size());
  Writer w(frame);
  w.Map(2 + body.pairs);
  w.Str("type");
  w.Str(type);
  w.Str("rid");
  w.UInt(rid);
  w.Raw(body.bytes);
  return frame;
}

std::string BatchHead(std::uint32_t rid, std::uint32_t count) {
  std::string head;
  Writer w(head);
  w.Map(3);
  w.Str("type");
  w.Str("events");
  w.Str("rid");
  w.UInt(rid);
  w.Str("events");
  w.Array(count);
  return head;
}

Body HelloBody(const GameInfo& game, const std::string& game_id) {
  Body body;
  AddInt(body, "protocol", kProtocolVersion);
  if (!game_id.empty()) AddStr(body, "game", game_id);
  AddStr(body, "binding", kBindingName);
  AddStr(body, "binding_version", kBindingVersion);
  for (const InfoField& f : InfoFields(game)) {
    if (!f.value->empty()) AddStr(body, f.name, *f.value);
  }
  return body;
}

Status SessionBody(std::string_view api, const SessionOptions& options, Body& out) {
  out = Body();
  if (!options.user_id.empty()) {
    if (Status s = CheckText(api, "SessionOptions.user_id", Text(options.user_id), 1, kMaxUserIdChars); !s) return s;
    AddStr(out, "user_id", options.user_id);
  }
  if (!options.user_ip.empty()) {
    if (Status s = CheckText(api, "SessionOptions.user_ip", Text(options.user_ip), 1, kMaxUserIpChars); !s) return s;
    AddStr(out, "user_ip", options.user_ip);
  }
  if (options.timestamp_ms) {
    if (*options.timestamp_ms < 0) return Invalid(Prefix(api, "SessionOptions.timestamp_ms must be >= 0"));
    AddInt(out, "ts", *options.timestamp_ms);
  }
  return Status();
}

namespace {
Status UserOf(std::string_view api, const std::string& user_id, Body& out) {
  if (user_id.empty()) return Status();
  if (Status s = CheckText(api, "user_id", Text(user_id), 1, kMaxUserIdChars); !s) return s;
  AddStr(out, "user_id", user_id);
  return Status();
}

void AddConsent(Body& out, const char* purpose, ConsentState state) {
  if (state != ConsentState::Unchanged) AddStr(out, purpose, state == ConsentState::Granted ? "granted" : "denied");
}
}  // namespace

Status ConsentBody(std::string_view api, const Consent& consent, Body& out) {
  out = Body();
  if (consent.analytics == ConsentState::Unchanged && consent.ip_ads == ConsentState::Unchanged) {
    return Invalid(Prefix(api, "Consent: give analytics, ip_ads or both"));
  }
  if (Status s = UserOf(api, consent.user_id, out); !s) return s;
  AddConsent(out, "analytics", consent.analytics);
  AddConsent(out, "ip_ads", consent.ip_ads);
  return Status();
}

Status ForgetBody(std::string_view api, const std::string& user_id, Body& out) {
  out = Body();
  return UserOf(api, user_id, out);
}

Status PurchaseBody(std::string_view api, const Purchase& purchase, const Limits& limits, std::string& id, Body& out) {
  if (!purchase.id.empty()) {
    if (Status s = CheckId(api, "Purchase.id", purchase.id, limits); !s) return s;
  }
  const std::optional<std::string_view> store = WireName(purchase.store, kStores);
  if (!store) return NotInEnum(api, "Purchase.store");
  if (Status s = CheckText(api, "Purchase.receipt", Text(purchase.receipt), 1, kMaxReceiptChars); !s) return s;
  if (Status s = CheckBase64(api, "Purchase.receipt", purchase.receipt); !s) return s;
  const bool google = purchase.store == PurchaseStore::GooglePlay;
  if (google) {
    if (purchase.signature.empty()) return Invalid(Prefix(api, "Purchase.signature is required for Google Play"));
    if (Status s = CheckText(api, "Purchase.signature", Text(purchase.signature), 1, kMaxReceiptChars); !s) return s;
    if (Status s = CheckBase64(api, "Purchase.signature", purchase.signature); !s) return s;
  }
  if (purchase.price_usd) {
    if (Status s = CheckFinite(api, "Purchase.price_usd", *purchase.price_usd); !s) return s;
    if (*purchase.price_usd < 0) return Invalid(Prefix(api, "Purchase.price_usd must be >= 0"));
  }
  if (!purchase.status.empty() && purchase.status != "processing" && purchase.status != "completed") {
    return Invalid(Prefix(api, "Purchase.status must be empty, \"processing\" or \"completed\""));
  }
  if (Status s = CheckText(api, "Purchase.comment", Text(purchase.comment), 0, kMaxCommentChars); !s) return s;

  id = purchase.id.empty() ? NewUuid() : purchase.id;
  out = Body();
  AddStr(out, "id", id);
  AddStr(out, "store", *store);
  AddStr(out, "receipt", purchase.receipt);
  if (google) AddStr(out, "signature", purchase.signature);
  if (!purchase.status.empty()) AddStr(out, "status", purchase.status);
  if (!purchase.comment.empty()) AddStr(out, "comment", purchase.comment);
  Writer w(out.bytes);
  if (purchase.price_usd) {
    w.Str("price_usd");
    w.Double(*purchase.price_usd);
    ++out.pairs;
  }
  if (!purchase.metadata.empty()) {
    const Path where{nullptr, "Purchase.metadata", 0, false};
    w.Str("metadata");
    if (Status s = PackChecked(w, Value(purchase.metadata), where, 0, limits); !s) return Invalid(Prefix(api, s.message()));
    ++out.pairs;
  }
  return Status();
}

Status EncodeEvent(std::string_view api, std::string_view category, std::initializer_list<FixedField> fixed,
                   const Fields& extra, const EventOptions* options, const Limits& limits, std::string& out) {
  std::size_t count = extra.size();
  for (const FixedField& f : fixed) count += f.value.index() != 0;
  if (count > limits.max_fields) {
    return Invalid(Prefix(api, std::to_string(count) + " fields; the limit is " + std::to_string(limits.max_fields)));
  }
  const bool named_user = options != nullptr && !options->user_id.empty();
  if (options != nullptr) {
    if (!options->id.empty()) {
      if (Status s = CheckId(api, "EventOptions.id", options->id, limits); !s) return s;
    }
    if (named_user) {
      if (Status s = CheckText(api, "EventOptions.user_id", Text(options->user_id), 1, kMaxUserIdChars); !s) return s;
    }
    if (options->timestamp_ms && *options->timestamp_ms < 0) return Invalid(Prefix(api, "EventOptions.timestamp_ms must be >= 0"));
  }

  out.clear();
  out.reserve(112 + 24 * count);
  Writer w(out);
  w.Map(named_user ? 5 : 4);
  w.Str("id");
  if (options != nullptr && !options->id.empty()) {
    w.Str(options->id);
  } else {
    char uuid[36];
    NewUuid(uuid);
    w.Str(std::string_view(uuid, sizeof uuid));
  }
  w.Str("category");
  w.Str(category);
  w.Str("ts");
  w.Int(options != nullptr && options->timestamp_ms ? *options->timestamp_ms : NowMs());
  if (named_user) {
    w.Str("user_id");
    w.Str(options->user_id);
  }
  w.Str("fields");
  w.Map(static_cast<std::uint32_t>(count));
  const Path fields_path{nullptr, "fields", 0, false};
  for (const FixedField& f : fixed) {
    if (f.value.index() == 0) continue;
    const Path where{&fields_path, f.key, 0, false};
    w.Str(f.key);
    if (const auto* s = std::get_if<std::string_view>(&f.value)) {
      if (Status st = CheckString(*s, where, limits); !st) return Invalid(Prefix(api, st.message()));
      w.Str(*s);
    } else if (const auto* i = std::get_if<std::int64_t>(&f.value)) {
      w.Int(*i);
    } else if (const auto* d = std::get_if<double>(&f.value)) {
      w.Double(*d);
    } else {
      if (Status st = PackChecked(w, *std::get<const Value*>(f.value), where, 1, limits); !st) {
        return Invalid(Prefix(api, st.message()));
      }
    }
  }
  for (std::size_t i = 0; i < extra.size(); ++i) {
    const std::string& key = extra[i].first;
    if (Status s = CheckKey(key, fields_path); !s) return Invalid(Prefix(api, s.message()));
    bool taken = false;
    for (const FixedField& f : fixed) taken = taken || (f.value.index() != 0 && f.key == key);
    for (std::size_t j = 0; j < i && !taken; ++j) taken = extra[j].first == key;
    if (taken) return Invalid(Prefix(api, "fields." + key + " is given twice"));
    const Path where{&fields_path, key, 0, false};
    w.Str(key);
    if (Status s = PackChecked(w, extra[i].second, where, 1, limits); !s) return Invalid(Prefix(api, s.message()));
  }
  const std::size_t max_bytes = limits.max_message_bytes - kBatchHeadRoom;
  if (out.size() > max_bytes) {
    return Invalid(Prefix(api, "the event is " + std::to_string(out.size()) + " bytes of msgpack; the limit is " +
                                   std::to_string(max_bytes)));
  }
  return Status();
}

// --- replies ----------------------------------------------------------------------------------------------

std::string_view StrField(const Value& map, std::string_view key) noexcept {
  const Value* v = map.Find(key);
  const std::string* s = v ? v->AsString() : nullptr;
  return s ? std::string_view(*s) : std::string_view();
}

std::uint64_t UIntField(const Value& map, std::string_view key) noexcept {
  const Value* v = map.Find(key);
  return v ? v->AsUInt().value_or(0) : 0;
}

Limits ReadLimits(const Value& welcome) {
  Limits l;
  const Value* given = welcome.Find("limits");
  if (given == nullptr) return l;
  std::pair<std::string_view, std::size_t*> fields[] = {
      {"max_message_bytes", &l.max_message_bytes}, {"max_batch_events", &l.max_batch_events},
      {"max_event_id_chars", &l.max_event_id_chars}, {"max_fields", &l.max_fields},
      {"max_string_chars", &l.max_string_chars}, {"max_depth", &l.max_depth}};
  for (auto& [name, field] : fields) {
    if (std::uint64_t n = UIntField(*given, name)) *field = static_cast<std::size_t>(n);
  }
  // A batch head must still fit beside one event.
  if (l.max_message_bytes <= 2 * kBatchHeadRoom) l.max_message_bytes = Limits().max_message_bytes;
  return l;
}

Ack ReadAck(const Value& reply) {
  Ack ack;
  ack.stored = UIntField(reply, "stored");
  ack.duplicates = UIntField(reply, "duplicates");
  if (const Value* rejected = reply.Find("rejected"); rejected && rejected->AsArray() && !rejected->AsArray()->empty()) {
    ack.rejected = rejected->AsArray()->size();
    ack.last_rejection = std::string(StrField(rejected->AsArray()->back(), "message"));
  }
  if (const Value* invalid = reply.Find("invalid"); invalid && invalid->AsArray()) {
    for (const Value& entry : *invalid->AsArray()) {
      ack.refusals.push_back(ProviderRefusal{std::string(StrField(entry, "id")), std::string(StrField(entry, "provider")),
                                             std::string(StrField(entry, "message"))});
    }
  }
  return ack;
}

Reply ReadReply(const Value& reply) {
  Reply r;
  r.type = std::string(StrField(reply, "type"));
  r.ok = r.type != "error";
  if (!r.ok) {
    r.error_code = std::string(StrField(reply, "code"));
    r.message = std::string(StrField(reply, "message"));
  }
  r.body = reply;
  return r;
}

std::optional<PurchaseResult> ReadVerdict(std::string id, const Value& v, std::string_view store) {
  const Value* is_valid = v.Find("is_valid");
  if (is_valid == nullptr || !is_valid->AsBool()) return std::nullopt;
  PurchaseResult r;
  r.id = std::move(id);
  r.ok = true;
  r.is_valid = *is_valid->AsBool();
  const Value* is_duplicate = v.Find("is_duplicate");
  r.is_duplicate = is_duplicate != nullptr && is_duplicate->AsBool().value_or(false);
  r.reason = std::string(StrField(v, "reason"));
  const std::string_view named_store = StrField(v, "store");
  r.store = std::string(named_store.empty() ? store : named_store);
  if (const Value* at = v.Find("verified_at")) r.verified_at = at->AsInt();
  return r;
}

Publication ReadPublication(const Value& publication) {
  Publication p;
  p.version = UIntField(publication, "version");
  if (const Value* values = publication.Find("values"); values && values->AsMap()) p.values = *values->AsMap();
  return p;
}

}  // namespace engine_bridge::detail
