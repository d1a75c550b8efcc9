// Client, the public face: the typed helpers turn their arguments into fields, everything else goes to the
// parts in src/internal/. Every member is noexcept: the library's own exceptions (std::bad_alloc, ZeroMQ's)
// stop here and come back as a Status.
#include <new>

#include "internal/check.hpp"
#include "internal/client_impl.hpp"

namespace engine_bridge {

using detail::CheckPart;
using detail::CheckText;
using detail::FixedField;
using detail::Invalid;
using detail::NotInEnum;
using detail::Prefix;
using detail::Present;
using detail::WireName;

namespace {

Status OutOfMemory() { return Status(ErrorCode::Internal, "out of memory"); }

// Runs `f`, turning what the library throws into a Status.
template <typename F>
Status Guard(F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return OutOfMemory();
  } catch (const std::exception& e) {
    return Status(ErrorCode::Internal, e.what());
  }
}

// A TrackAd's "ad_fb_error" extra field (deprecated: protocol v1's first name of "ad_fail_show_reason"), taken
// as the reason: `fields` is then `rest`, a copy of `extra` without it (this deprecated path alone copies).
Status TakeAdFbError(std::string_view api, const Fields& extra, std::optional<std::string_view>& reason, Fields& rest,
                     const Fields*& fields) {
  fields = &extra;
  const Value* legacy = nullptr;
  for (const auto& [key, value] : extra) legacy = key == detail::kAdFbError ? &value : legacy;
  if (legacy == nullptr) return Status();
  if (!legacy->is_nil()) {
    if (reason) {
      return Invalid(Prefix(api, "extra holds \"ad_fb_error\", the deprecated name of fail_show_reason, which is "
                                 "given too: give fail_show_reason alone"));
    }
    const std::string* text = legacy->AsString();
    for (std::string_view name : detail::kAdFailShowReasons) {
      if (text != nullptr && *text == name) reason = name;
    }
    if (!reason) {
      std::string names;
      for (std::string_view name : detail::kAdFailShowReasons) names.append(names.empty() ? "" : ", ").append(name);
      return Invalid(Prefix(api, "extra.ad_fb_error (deprecated: use fail_show_reason) must be one of " + names +
                                     (text != nullptr ? ", got \"" + text->substr(0, 200) + "\"" : std::string())));
    }
  }
  rest.reserve(extra.size() - 1);
  for (const auto& entry : extra) {
    if (entry.first != detail::kAdFbError) rest.push_back(entry);
  }
  fields = &rest;
  return Status();
}

}  // namespace

Status Client::Impl::Emit(std::string_view api, std::string_view category, std::initializer_list<FixedField> fixed,
                          const Fields& extra, const EventOptions* options) {
  if (!Running()) return Status(ErrorCode::NotConnected, Prefix(api, "call Connect() first"));
  std::string event;
  if (Status s = detail::EncodeEvent(api, category, fixed, extra, options, limits.Get(), event); !s) return s;
  queue.Push(std::move(event));
  return Status();
}

Status Client::Impl::EnqueueControl(std::string_view api, std::string_view type, detail::Body body,
                                    detail::OnReply on_reply) {
  if (!Running()) return Status(ErrorCode::NotConnected, Prefix(api, "call Connect() first"));
  return queue.PushControl(api, std::string(type), std::move(body), std::move(on_reply));
}

Status Client::Impl::EnqueuePurchase(std::string_view api, const Purchase& purchase, PurchaseCallback callback,
                                     std::string* id) {
  if (!callback) return Invalid(Prefix(api, "on_result is empty"));
  std::string purchase_id;
  detail::Body body;
  if (Status s = detail::PurchaseBody(api, purchase, limits.Get(), purchase_id, body); !s) return s;
  const std::string store(*WireName(purchase.store, detail::kStores));
  detail::PurchaseTicket ticket = purchases.Await(purchase_id, store, std::move(callback));
  Status queued = EnqueueControl(api, "purchase", std::move(body), ticket);
  if (!queued) {
    purchases.Forget(ticket);
  } else if (id != nullptr) {
    *id = purchase_id;
  }
  return queued;
}

// --- connecting, polling, stats -----------------------------------------------------------------------------

Client::Client() noexcept : impl_(std::make_unique<Impl>()) {}
Client::~Client() = default;

Status Client::Connect(const GameInfo& game, const Settings& settings) noexcept {
  return Guard([&] { return impl_->Connect(game, settings); });
}

void Client::Shutdown(std::optional<std::chrono::milliseconds> grace) noexcept { impl_->Shutdown(grace); }
std::size_t Client::Poll() { return impl_->callbacks.Run(); }

Stats Client::GetStats() const noexcept {
  try {
    return impl_->queue.Snapshot();
  } catch (const std::bad_alloc&) {
    return Stats();  // the strings could not be copied
  }
}

void Client::SetProviderRefusalHandler(ProviderRefusalCallback handler) noexcept {
  Guard([&] {
    impl_->refusal_handler.Set(std::move(handler));
    return Status();
  });
}

void Client::SetConnectionHandler(ConnectionCallback handler) noexcept {
  Guard([&] {
    impl_->connection_handler.Set(std::move(handler));
    return Status();
  });
}

void Client::SetLogHandler(LogCallback handler) noexcept {
  Guard([&] {
    impl_->console.SetHandler(std::move(handler));
    return Status();
  });
}

// --- typed helpers --------------------------------------------------------------------------------------

Status Client::TrackDesign(Text event_id, std::optional<double> value, const Fields& extra) noexcept {
  return Guard([&]() -> Status {
    constexpr std::string_view api = "TrackDesign";
    if (Status s = CheckText(api, "event_id", event_id, 1, impl_->limits.Get().max_string_chars); !s) return s;
    if (Status s = detail::CheckJoinedId(api, "design", event_id.view()); !s) return s;
    if (value) {
      if (Status s = detail::CheckFinite(api, "value", *value); !s) return s;
    }
    FixedField value_field{"value", {}};
    if (value) value_field.value = *value;
    return impl_->Emit(api, "design", {{"event_id", event_id.view()}, value_field}, extra, nullptr);
  });
}

Status Client::TrackBusiness(Text currency, std::int64_t amount_cents, Text item_type, Text item_id, Text cart_type,
                             const Fields& extra) noexcept {
  return Guard([&]() -> Status {
    constexpr std::string_view api = "TrackBusiness";
    if (Status s = detail::CheckCurrency(api, currency); !s) return s;
    if (amount_cents < 0) return Invalid(Prefix(api, "amount_cents must be >= 0, got " + std::to_string(amount_cents)));
    if (Status s = CheckPart(api, "item_type", item_type); !s) return s;
    if (Status s = CheckPart(api, "item_id", item_id); !s) return s;
    if (Present(cart_type)) {
      if (Status s = CheckText(api, "cart_type", cart_type, 1, detail::kMaxPartChars); !s) return s;
    }
    std::string event_id;
    event_id.reserve(item_type.view().size() + 1 + item_id.view().size());
    event_id.append(item_type.view()).append(1, ':').append(item_id.view());
    FixedField cart{"cart_type", {}};
    if (Present(cart_type)) cart.value = cart_type.view();
    return impl_->Emit(api, "business",
                       {{"event_id", std::string_view(event_id)}, {"amount", amount_cents}, {"currency", currency.view()}, cart},
                       extra, nullptr);
  });
}

Status Client::TrackProgression(ProgressionStatus status, Text progression01, Text progression02, Text progression03,
                                std::optional<std::int64_t> score, std::optional<std::int64_t> attempt_num,
                                const Fields& extra) noexcept {
  return Guard([&]() -> Status {
    constexpr std::string_view api = "TrackProgression";
    const std::optional<std::string_view> first = WireName(status, detail::kProgressionStatuses);
    if (!first) return NotInEnum(api, "status");
    if (Status s = CheckPart(api, "progression01", progression01); !s) return s;
    if (Present(progression02)) {
      if (Status s = CheckPart(api, "progression02", progression02); !s) return s;
    }
    if (Present(progression03)) {
      if (!Present(progression02)) return Invalid(Prefix(api, "progression03 is set but progression02 is not"));
      if (Status s = CheckPart(api, "progression03", progression03); !s) return s;
    }
    if (attempt_num && *attempt_num < 1) return Invalid(Prefix(api, "attempt_num must be >= 1"));
    std::string event_id(*first);
    for (Text part : {progression01, progression02, progression03}) {
      if (Present(part)) event_id.append(1, ':').append(part.view());
    }
    FixedField score_field{"score", {}}, attempt_field{"attempt_num", {}};
    if (score) score_field.value = *score;
    if (attempt_num) attempt_field.value = *attempt_num;
    return impl_->Emit(api, "progression", {{"event_id", std::string_view(event_id)}, attempt_field, score_field},
                       extra, nullptr);
  });
}

Status Client::TrackResource(ResourceFlow flow, Text currency, double amount, Text item_type, Text item_id,
                             const Fields& extra) noexcept {
  return Guard([&]() -> Status {
    constexpr std::string_view api = "TrackResource";
    const std::optional<std::string_view> first = WireName(flow, detail::kResourceFlows);
    if (!first) return NotInEnum(api, "flow");
    if (Status s = CheckPart(api, "currency", currency); !s) return s;
    if (Status s = detail::CheckFinite(api, "amount", amount); !s) return s;
    if (amount <= 0) {
      return Invalid(Prefix(api, "amount must be > 0 (the flow says the direction), got " + std::to_string(amount)));
    }
    if (Status s = CheckPart(api, "item_type", item_type); !s) return s;
    if (Status s = CheckPart(api, "item_id", item_id); !s) return s;
    std::string event_id(*first);
    for (Text part : {currency, item_type, item_id}) event_id.append(1, ':').append(part.view());
    return impl_->Emit(api, "resource", {{"event_id", std::string_view(event_id)}, {"amount", amount}}, extra, nullptr);
  });
}

Status Client::TrackError(ErrorSeverity severity, Text message, const Fields& extra) noexcept {
  return Guard([&]() -> Status {
    constexpr std::string_view api = "TrackError";
    const std::optional<std::string_view> name = WireName(severity, detail::kSeverities);
    if (!name) return NotInEnum(api, "severity");
    if (Status s = CheckText(api, "message", message, 0, impl_->limits.Get().max_string_chars); !s) return s;
    return impl_->Emit(api, "error", {{"severity", *name}, {"message", message.view()}}, extra, nullptr);
  });
}

Status Client::TrackAd(AdAction action, AdType ad_type, Text sdk_name, Text placement,
                       std::optional<std::int64_t> duration_ms, std::optional<AdFailShowReason> fail_show_reason,
                       const Fields& extra) noexcept {
  return Guard([&]() -> Status {
    constexpr std::string_view api = "TrackAd";
    const std::optional<std::string_view> action_name = WireName(action, detail::kAdActions);
    if (!action_name) return NotInEnum(api, "action");
    const std::optional<std::string_view> type_name = WireName(ad_type, detail::kAdTypes);
    if (!type_name) return NotInEnum(api, "ad_type");
    if (Status s = CheckText(api, "sdk_name", sdk_name, 1, detail::kMaxPartChars); !s) return s;
    if (Status s = CheckText(api, "placement", placement, 1, detail::kMaxPartChars); !s) return s;
    if (duration_ms && *duration_ms < 0) return Invalid(Prefix(api, "duration_ms must be >= 0"));
    std::optional<std::string_view> reason;
    if (fail_show_reason) {
      reason = WireName(*fail_show_reason, detail::kAdFailShowReasons);
      if (!reason) return NotInEnum(api, "fail_show_reason");
    }
    Fields rest;
    const Fields* fields = nullptr;
    if (Status s = TakeAdFbError(api, extra, reason, rest, fields); !s) return s;
    FixedField duration{"ad_duration", {}}, reason_field{"ad_fail_show_reason", {}};
    if (duration_ms) duration.value = *duration_ms;
    if (reason) reason_field.value = *reason;
    return impl_->Emit(api, "ads",
                       {{"ad_action", *action_name}, {"ad_type", *type_name}, {"ad_sdk_name", sdk_name.view()},
                        {"ad_placement", placement.view()}, duration, reason_field},
                       *fields, nullptr);
  });
}

Status Client::TrackAd(AdAction action, AdType ad_type, Text sdk_name, Text placement,
                       std::optional<std::int64_t> duration_ms, const Fields& extra) noexcept {
  return TrackAd(action, ad_type, sdk_name, placement, duration_ms, std::nullopt, extra);
}

Status Client::TrackImpression(Text ad_network_name, Text ad_network_version, const Value::Map& impression_data,
                               const Fields& extra) noexcept {
  return Guard([&]() -> Status {
    constexpr std::string_view api = "TrackImpression";
    if (Status s = CheckText(api, "ad_network_name", ad_network_name, 1, detail::kMaxPartChars); !s) return s;
    if (Status s = CheckText(api, "ad_network_version", ad_network_version, 1, detail::kMaxPartChars); !s) return s;
    const Value data(impression_data);
    return impl_->Emit(api, "impression",
                       {{"ad_network_name", ad_network_name.view()}, {"ad_network_version", ad_network_version.view()},
                        {"impression_data", &data}},
                       extra, nullptr);
  });
}

Status Client::TrackCustom(Text name, const Fields& fields) noexcept {
  return Guard([&]() -> Status {
    constexpr std::string_view api = "TrackCustom";
    if (Status s = CheckText(api, "name", name, 1, detail::kMaxNameChars); !s) return s;
    return impl_->Emit(api, "custom", {{"name", name.view()}}, fields, nullptr);
  });
}

Status Client::Track(EventCategory category, const Fields& fields, const EventOptions& options) noexcept {
  return Guard([&]() -> Status {
    constexpr std::string_view api = "Track";
    if (Status s = detail::CheckCategoryFields(api, category, fields); !s) return s;
    return impl_->Emit(api, *WireName(category, detail::kCategories), {}, fields, &options);
  });
}

// --- control requests -----------------------------------------------------------------------------------

Status Client::StartSession(ReplyCallback on_reply, const SessionOptions& options) noexcept {
  return Guard([&]() -> Status {
    detail::Body body;
    if (Status s = detail::SessionBody("StartSession", options, body); !s) return s;
    return impl_->EnqueueControl("StartSession", "session_start", std::move(body), std::move(on_reply));
  });
}

Status Client::EndSession(ReplyCallback on_reply, const SessionOptions& options) noexcept {
  return Guard([&]() -> Status {
    detail::Body body;
    if (Status s = detail::SessionBody("EndSession", options, body); !s) return s;
    return impl_->EnqueueControl("EndSession", "session_end", std::move(body), std::move(on_reply));
  });
}

Status Client::Flush(ReplyCallback on_reply) noexcept {
  return Guard([&] { return impl_->EnqueueControl("Flush", "flush", {}, std::move(on_reply)); });
}

Status Client::SetConsent(const Consent& consent, ReplyCallback on_reply) noexcept {
  return Guard([&]() -> Status {
    detail::Body body;
    if (Status s = detail::ConsentBody("SetConsent", consent, body); !s) return s;
    return impl_->EnqueueControl("SetConsent", "consent", std::move(body), std::move(on_reply));
  });
}

Status Client::Forget(const std::string& user_id, ReplyCallback on_reply) noexcept {
  return Guard([&]() -> Status {
    detail::Body body;
    if (Status s = detail::ForgetBody("Forget", user_id, body); !s) return s;
    return impl_->EnqueueControl("Forget", "forget", std::move(body), std::move(on_reply));
  });
}

Status Client::VerifyPurchase(const Purchase& purchase, PurchaseCallback on_result, std::string* id) noexcept {
  return Guard([&] { return impl_->EnqueuePurchase("VerifyPurchase", purchase, std::move(on_result), id); });
}

void Client::SetPurchaseHandler(PurchaseCallback handler) noexcept {
  Guard([&] {
    impl_->purchases.SetHandler(std::move(handler));
    return Status();
  });
}

// --- configs -------------------------------------------------------------------------------------------

Status Client::SubscribeConfig(Text key, ConfigCallback callback, SubscriptionId* id) noexcept {
  return Guard([&] { return impl_->configs.Subscribe(key, std::move(callback), id); });
}

void Client::Unsubscribe(SubscriptionId id) noexcept {
  Guard([&] {
    impl_->configs.Unsubscribe(id);
    return Status();
  });
}

std::optional<Value> Client::GetConfig(Text key) const noexcept {
  if (key.is_null()) return std::nullopt;
  try {
    return impl_->configs.Get(key.view());
  } catch (const std::bad_alloc&) {
    return std::nullopt;
  }
}

std::string Client::GetString(Text key, std::string fallback) const noexcept {
  std::optional<Value> v = GetConfig(key);
  const std::string* s = v ? v->AsString() : nullptr;
  if (s == nullptr) return fallback;
  try {
    return *s;
  } catch (const std::bad_alloc&) {
    return fallback;
  }
}

std::int64_t Client::GetInt(Text key, std::int64_t fallback) const noexcept {
  std::optional<Value> v = GetConfig(key);
  return v ? v->AsInt().value_or(fallback) : fallback;
}

double Client::GetDouble(Text key, double fallback) const noexcept {
  std::optional<Value> v = GetConfig(key);
  return v ? v->AsDouble().value_or(fallback) : fallback;
}

bool Client::GetBool(Text key, bool fallback) const noexcept {
  std::optional<Value> v = GetConfig(key);
  return v ? v->AsBool().value_or(fallback) : fallback;
}

}  // namespace engine_bridge
