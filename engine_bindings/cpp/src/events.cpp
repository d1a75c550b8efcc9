// The game-thread half: argument checks, event encoding and the typed helpers. Everything here runs on
// the caller's thread and ends in a short critical section (Enqueue); nothing waits on the network.
#include <array>
#include <chrono>
#include <cmath>
#include <random>

#include "client_impl.hpp"

namespace engine_bridge {

using detail::Invalid;
using detail::Path;
using detail::Writer;

namespace {

using detail::Field;

constexpr std::size_t kMaxPartChars = 64;  // one part of a `:`-joined event_id
constexpr std::size_t kMaxCommentChars = 1024;  // a purchase's comment, protocol.md 4.9

// A UUID v4 in lower case, from a per-thread generator (no lock, no system call after the first).
void NewUuid(char out[36]) {
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count())};
    return std::mt19937_64(seq);
  }();
  std::uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
  static constexpr char kHex[] = "0123456789abcdef";
  int pos = 0;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out[pos++] = '-';
    const std::uint64_t word = i < 16 ? hi : lo;
    out[pos++] = kHex[(word >> (60 - 4 * (i % 16))) & 0xF];
  }
}

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Prefix(std::string_view api, std::string_view rest) {
  std::string out(api);
  out += ": ";
  out += rest;
  return out;
}

// A string argument that must be present, valid UTF-8 and `min..max` chars long.
Status CheckText(std::string_view api, const char* name, Text t, std::size_t min_chars, std::size_t max_chars) {
  if (t.is_null()) return Invalid(Prefix(api, std::string(name) + " is null"));
  std::optional<std::size_t> chars = detail::Utf8Chars(t.view());
  if (!chars) return Invalid(Prefix(api, std::string(name) + " is not valid UTF-8"));
  if (*chars < min_chars || *chars > max_chars) {
    return Invalid(Prefix(api, std::string(name) + " must be " + std::to_string(min_chars) + ".." +
                                   std::to_string(max_chars) + " chars, got " + std::to_string(*chars)));
  }
  return Status();
}

// One part of a `:`-joined event_id: 1–64 chars without ':'.
Status CheckPart(std::string_view api, const char* name, Text t) {
  if (Status s = CheckText(api, name, t, 1, kMaxPartChars); !s) return s;
  if (t.view().find(':') != std::string_view::npos) return Invalid(Prefix(api, std::string(name) + " must not contain ':'"));
  return Status();
}

// An optional part: null or empty means absent.
bool Present(Text t) { return !t.is_null() && !t.empty(); }

Status CheckFinite(std::string_view api, const char* name, double d) {
  if (std::isfinite(d)) return Status();
  return Invalid(Prefix(api, std::string(name) + " must be a finite number, got " + detail::NumberText(d)));
}

// Client-chosen ids (events, purchases): protocol.md section 5.
Status CheckEventId(std::string_view api, const char* name, const std::string& id) {
  if (id.empty() || id.size() > detail::kMaxEventIdChars) {
    return Invalid(Prefix(api, std::string(name) + " must be 1.." + std::to_string(detail::kMaxEventIdChars) +
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

// The `:`-joined event_id of the generic helper, by category; the typed helpers build theirs from parts.
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

Status CheckCurrency(std::string_view api, Text currency) {
  if (currency.is_null()) return Invalid(Prefix(api, "currency is null"));
  std::string_view c = currency.view();
  bool ok = c.size() == 3;
  for (char ch : c) ok = ok && ch >= 'A' && ch <= 'Z';
  if (!ok) return Invalid(Prefix(api, "currency must be an ISO 4217 code like \"USD\", got \"" + std::string(c.substr(0, 16)) + "\""));
  return Status();
}

// The required fields of each category and the kind each must have (protocol.md section 5), for the
// generic Track(); the typed helpers are correct by construction. In EventCategory order.
enum class Kind { Str, Int, Number };
struct Required {
  std::string_view category;
  std::array<std::pair<std::string_view, Kind>, 4> fields;
  std::size_t count;
};
constexpr Required kCategories[] = {
    {"design", {{{"event_id", Kind::Str}}}, 1},
    {"business", {{{"event_id", Kind::Str}, {"amount", Kind::Int}, {"currency", Kind::Str}}}, 3},
    {"progression", {{{"event_id", Kind::Str}}}, 1},
    {"resource", {{{"event_id", Kind::Str}, {"amount", Kind::Number}}}, 2},
    {"error", {{{"severity", Kind::Str}, {"message", Kind::Str}}}, 2},
    {"ads", {{{"ad_action", Kind::Str}, {"ad_type", Kind::Str}, {"ad_sdk_name", Kind::Str}, {"ad_placement", Kind::Str}}}, 4},
    {"custom", {{{"name", Kind::Str}}}, 1},
};

// Wire names of the enums, in declaration order.
constexpr std::string_view kSeverities[] = {"debug", "info", "warning", "error", "critical"};
constexpr std::string_view kAdActions[] = {"clicked", "show", "failed_show", "reward_received", "request", "loaded"};
constexpr std::string_view kAdTypes[] = {"video", "rewarded_video", "playable", "interstitial", "offer_wall", "banner"};
constexpr std::string_view kStores[] = {"apple", "googleplay"};

// An enum's wire name, or nothing for a value outside the enum (a cast from a bad integer, say from C).
template <typename Enum, typename Names>
std::optional<std::string_view> WireName(Enum e, const Names& names) {
  const auto i = static_cast<std::size_t>(e);
  if (i >= std::size(names)) return std::nullopt;
  return names[i];
}

Status NotInEnum(std::string_view api, const char* name) {
  return Invalid(Prefix(api, std::string(name) + " is not a value of its enum"));
}

}  // namespace

Status Client::Impl::Emit(std::string_view api, std::string_view category, std::initializer_list<Field> fixed,
                          const Fields& extra, const EventOptions* options) {
  if (!running_.load(std::memory_order_acquire)) {
    return Status(ErrorCode::NotConnected, Prefix(api, "call Connect() first"));
  }
  std::size_t count = extra.size();
  for (const Field& f : fixed) count += f.value.index() != 0;
  if (count > detail::kMaxFields) {
    return Invalid(Prefix(api, std::to_string(count) + " fields; the limit is " + std::to_string(detail::kMaxFields)));
  }
  const bool named_user = options != nullptr && !options->user_id.empty();
  if (options != nullptr) {
    if (!options->id.empty()) {
      if (Status s = CheckEventId(api, "EventOptions.id", options->id); !s) return s;
    }
    if (named_user) {
      if (Status s = CheckText(api, "EventOptions.user_id", Text(options->user_id), 1, detail::kMaxUserIdChars); !s) return s;
    }
    if (options->timestamp_ms && *options->timestamp_ms < 0) return Invalid(Prefix(api, "EventOptions.timestamp_ms must be >= 0"));
  }

  std::string out;
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
  for (const Field& f : fixed) {
    if (f.value.index() == 0) continue;
    const Path where{&fields_path, f.key, 0, false};
    w.Str(f.key);
    if (const auto* s = std::get_if<std::string_view>(&f.value)) {
      if (Status st = detail::CheckString(*s, where); !st) return Invalid(Prefix(api, st.message()));
      w.Str(*s);
    } else if (const auto* i = std::get_if<std::int64_t>(&f.value)) {
      w.Int(*i);
    } else {
      w.Double(std::get<double>(f.value));
    }
  }
  for (std::size_t i = 0; i < extra.size(); ++i) {
    const std::string& key = extra[i].first;
    if (Status s = detail::CheckKey(key, fields_path); !s) return Invalid(Prefix(api, s.message()));
    bool taken = false;
    for (const Field& f : fixed) taken = taken || (f.value.index() != 0 && f.key == key);
    for (std::size_t j = 0; j < i && !taken; ++j) taken = extra[j].first == key;
    if (taken) return Invalid(Prefix(api, "fields." + key + " is given twice"));
    const Path where{&fields_path, key, 0, false};
    w.Str(key);
    if (Status s = detail::PackChecked(w, extra[i].second, where, 1); !s) return Invalid(Prefix(api, s.message()));
  }
  if (out.size() > detail::kMaxEventBytes) {
    return Invalid(Prefix(api, "the event is " + std::to_string(out.size()) + " bytes of msgpack; the limit is " +
                                   std::to_string(detail::kMaxEventBytes)));
  }
  Enqueue(std::move(out));
  return Status();
}

// --- typed helpers --------------------------------------------------------------------------------------

Status Client::TrackDesign(Text event_id, std::optional<double> value, const Fields& extra) {
  constexpr std::string_view api = "TrackDesign";
  if (Status s = CheckText(api, "event_id", event_id, 1, detail::kMaxStringChars); !s) return s;
  if (Status s = CheckJoinedId(api, "design", event_id.view()); !s) return s;
  if (value) {
    if (Status s = CheckFinite(api, "value", *value); !s) return s;
  }
  Field value_field{"value", {}};
  if (value) value_field.value = *value;
  return impl_->Emit(api, "design", {{"event_id", event_id.view()}, value_field}, extra, nullptr);
}

Status Client::TrackBusiness(Text currency, std::int64_t amount_cents, Text item_type, Text item_id, Text cart_type,
                             const Fields& extra) {
  constexpr std::string_view api = "TrackBusiness";
  if (Status s = CheckCurrency(api, currency); !s) return s;
  if (amount_cents < 0) return Invalid(Prefix(api, "amount_cents must be >= 0, got " + std::to_string(amount_cents)));
  if (Status s = CheckPart(api, "item_type", item_type); !s) return s;
  if (Status s = CheckPart(api, "item_id", item_id); !s) return s;
  if (Present(cart_type)) {
    if (Status s = CheckText(api, "cart_type", cart_type, 1, kMaxPartChars); !s) return s;
  }
  std::string event_id;
  event_id.reserve(item_type.view().size() + 1 + item_id.view().size());
  event_id.append(item_type.view()).append(1, ':').append(item_id.view());
  Field cart{"cart_type", {}};
  if (Present(cart_type)) cart.value = cart_type.view();
  return impl_->Emit(api, "business",
                     {{"event_id", std::string_view(event_id)}, {"amount", amount_cents}, {"currency", currency.view()}, cart},
                     extra, nullptr);
}

Status Client::TrackProgression(ProgressionStatus status, Text progression01, Text progression02, Text progression03,
                                std::optional<std::int64_t> score, std::optional<std::int64_t> attempt_num,
                                const Fields& extra) {
  constexpr std::string_view api = "TrackProgression";
  if (static_cast<unsigned>(status) > static_cast<unsigned>(ProgressionStatus::Complete)) return NotInEnum(api, "status");
  if (Status s = CheckPart(api, "progression01", progression01); !s) return s;
  if (Present(progression02)) {
    if (Status s = CheckPart(api, "progression02", progression02); !s) return s;
  }
  if (Present(progression03)) {
    if (!Present(progression02)) return Invalid(Prefix(api, "progression03 is set but progression02 is not"));
    if (Status s = CheckPart(api, "progression03", progression03); !s) return s;
  }
  if (attempt_num && *attempt_num < 1) return Invalid(Prefix(api, "attempt_num must be >= 1"));
  std::string event_id = status == ProgressionStatus::Start ? "Start" : status == ProgressionStatus::Fail ? "Fail" : "Complete";
  for (Text part : {progression01, progression02, progression03}) {
    if (Present(part)) event_id.append(1, ':').append(part.view());
  }
  Field score_field{"score", {}}, attempt_field{"attempt_num", {}};
  if (score) score_field.value = *score;
  if (attempt_num) attempt_field.value = *attempt_num;
  return impl_->Emit(api, "progression", {{"event_id", std::string_view(event_id)}, attempt_field, score_field}, extra,
                     nullptr);
}

Status Client::TrackResource(ResourceFlow flow, Text currency, double amount, Text item_type, Text item_id,
                             const Fields& extra) {
  constexpr std::string_view api = "TrackResource";
  if (flow != ResourceFlow::Source && flow != ResourceFlow::Sink) return NotInEnum(api, "flow");
  if (Status s = CheckPart(api, "currency", currency); !s) return s;
  if (Status s = CheckFinite(api, "amount", amount); !s) return s;
  if (amount <= 0) return Invalid(Prefix(api, "amount must be > 0 (the flow says the direction), got " + std::to_string(amount)));
  if (Status s = CheckPart(api, "item_type", item_type); !s) return s;
  if (Status s = CheckPart(api, "item_id", item_id); !s) return s;
  std::string event_id = flow == ResourceFlow::Source ? "Source" : "Sink";
  for (Text part : {currency, item_type, item_id}) event_id.append(1, ':').append(part.view());
  return impl_->Emit(api, "resource", {{"event_id", std::string_view(event_id)}, {"amount", amount}}, extra, nullptr);
}

Status Client::TrackError(ErrorSeverity severity, Text message, const Fields& extra) {
  constexpr std::string_view api = "TrackError";
  const std::optional<std::string_view> name = WireName(severity, kSeverities);
  if (!name) return NotInEnum(api, "severity");
  if (Status s = CheckText(api, "message", message, 0, detail::kMaxStringChars); !s) return s;
  return impl_->Emit(api, "error", {{"severity", *name}, {"message", message.view()}}, extra, nullptr);
}

Status Client::TrackAd(AdAction action, AdType ad_type, Text sdk_name, Text placement,
                       std::optional<std::int64_t> duration_ms, const Fields& extra) {
  constexpr std::string_view api = "TrackAd";
  const std::optional<std::string_view> action_name = WireName(action, kAdActions);
  if (!action_name) return NotInEnum(api, "action");
  const std::optional<std::string_view> type_name = WireName(ad_type, kAdTypes);
  if (!type_name) return NotInEnum(api, "ad_type");
  if (Status s = CheckText(api, "sdk_name", sdk_name, 1, kMaxPartChars); !s) return s;
  if (Status s = CheckText(api, "placement", placement, 1, kMaxPartChars); !s) return s;
  if (duration_ms && *duration_ms < 0) return Invalid(Prefix(api, "duration_ms must be >= 0"));
  Field duration{"ad_duration", {}};
  if (duration_ms) duration.value = *duration_ms;
  return impl_->Emit(api, "ads",
                     {{"ad_action", *action_name}, {"ad_type", *type_name}, {"ad_sdk_name", sdk_name.view()},
                      {"ad_placement", placement.view()}, duration},
                     extra, nullptr);
}

Status Client::TrackCustom(Text name, const Fields& fields) {
  constexpr std::string_view api = "TrackCustom";
  if (Status s = CheckText(api, "name", name, 1, 64); !s) return s;
  return impl_->Emit(api, "custom", {{"name", name.view()}}, fields, nullptr);
}

Status Client::Track(EventCategory category, const Fields& fields, const EventOptions& options) {
  constexpr std::string_view api = "Track";
  const auto index = static_cast<std::size_t>(category);
  if (index >= std::size(kCategories)) return NotInEnum(api, "category");
  const Required* rule = &kCategories[index];
  for (std::size_t i = 0; i < rule->count; ++i) {
    const auto& [name, kind] = rule->fields[i];
    const Value* v = nullptr;
    for (const auto& [k, value] : fields) v = k == name ? &value : v;
    if (v == nullptr) return Invalid(Prefix(api, "fields." + std::string(name) + " is required for " + std::string(rule->category)));
    const bool ok = kind == Kind::Str ? v->AsString() != nullptr
                    : kind == Kind::Int ? v->type() == Value::Type::Int || v->type() == Value::Type::UInt
                                        : v->AsDouble().has_value();
    if (!ok) {
      return Invalid(Prefix(api, "fields." + std::string(name) + " must be " +
                                     (kind == Kind::Str ? "a string" : kind == Kind::Int ? "an integer" : "a number")));
    }
    if (name == "event_id") {
      if (Status s = CheckJoinedId(api, rule->category, *v->AsString()); !s) return s;
    }
  }
  return impl_->Emit(api, rule->category, {}, fields, &options);
}

// --- control requests -----------------------------------------------------------------------------------

Status Client::StartSession(ReplyCallback on_reply) { return impl_->EnqueueControl("StartSession", "session_start", {}, 0, std::move(on_reply)); }
Status Client::EndSession(ReplyCallback on_reply) { return impl_->EnqueueControl("EndSession", "session_end", {}, 0, std::move(on_reply)); }
Status Client::Flush(ReplyCallback on_reply) { return impl_->EnqueueControl("Flush", "flush", {}, 0, std::move(on_reply)); }

Status Client::VerifyPurchase(const Purchase& purchase, PurchaseCallback on_result, std::string* id) {
  constexpr std::string_view api = "VerifyPurchase";
  if (!on_result) return Invalid(Prefix(api, "on_result is empty"));
  if (!purchase.id.empty()) {
    if (Status s = CheckEventId(api, "Purchase.id", purchase.id); !s) return s;
  }
  const std::optional<std::string_view> store = WireName(purchase.store, kStores);
  if (!store) return NotInEnum(api, "Purchase.store");
  if (Status s = CheckText(api, "Purchase.receipt", Text(purchase.receipt), 1, detail::kMaxReceiptChars); !s) return s;
  if (Status s = CheckBase64(api, "Purchase.receipt", purchase.receipt); !s) return s;
  const bool google = purchase.store == PurchaseStore::GooglePlay;
  if (google) {
    if (purchase.signature.empty()) return Invalid(Prefix(api, "Purchase.signature is required for Google Play"));
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
  std::string purchase_id = purchase.id;
  if (purchase_id.empty()) {
    char uuid[36];
    NewUuid(uuid);
    purchase_id.assign(uuid, sizeof uuid);
  }
  std::string body;
  Writer w(body);
  std::uint32_t fields = 3;
  w.Str("id");
  w.Str(purchase_id);
  w.Str("store");
  w.Str(*store);
  w.Str("receipt");
  w.Str(purchase.receipt);
  const Path root{nullptr, "Purchase", 0, false};
  const std::string no_signature;
  for (auto [key, text] : {std::pair<const char*, const std::string*>{"signature", google ? &purchase.signature : &no_signature},
                           {"status", &purchase.status}, {"comment", &purchase.comment}}) {
    if (text->empty()) continue;
    const Path where{&root, key, 0, false};
    if (Status s = detail::CheckString(*text, where); !s) return Invalid(Prefix(api, s.message()));
    w.Str(key);
    w.Str(*text);
    ++fields;
  }
  if (purchase.price_usd) {
    w.Str("price_usd");
    w.Double(*purchase.price_usd);
    ++fields;
  }
  if (!purchase.metadata.empty()) {
    const Path where{&root, "metadata", 0, false};
    w.Str("metadata");
    if (Status s = detail::PackChecked(w, Value(purchase.metadata), where, 0); !s) return Invalid(Prefix(api, s.message()));
    ++fields;
  }
  const std::string kept_id = id != nullptr ? purchase_id : std::string();
  Status queued = impl_->EnqueuePurchase(api, std::move(purchase_id), *store, std::move(body), fields, std::move(on_result));
  if (queued && id != nullptr) *id = kept_id;
  return queued;
}

}  // namespace engine_bridge
