// The C ABI: thin adapters from engine_bridge.h onto Client; no behaviour of its own. No exception crosses it.
#include "engine_bridge/engine_bridge.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <new>

#include "engine_bridge/engine_bridge.hpp"
#include "internal/msgpack_reader.hpp"
#include "internal/msgpack_writer.hpp"

using engine_bridge::Client;
using engine_bridge::ErrorCode;
using engine_bridge::Fields;
using engine_bridge::Status;
using engine_bridge::Value;

struct eb_client {
  Client client;
  engine_bridge::GameInfo game;
  engine_bridge::Settings settings;
};

namespace {

thread_local std::string g_last_error;

eb_status Report(const Status& s) {
  g_last_error = s.message();
  return static_cast<eb_status>(s.code());
}

eb_status Fail(ErrorCode code, std::string message) { return Report(Status(code, std::move(message))); }

eb_status NullClient(const char* fn) { return Fail(ErrorCode::InvalidArgument, std::string(fn) + ": client is NULL"); }

// Runs the body of an eb_* function: what it throws becomes EB_INTERNAL.
template <typename F>
eb_status Guard(F&& f) noexcept {
  try {
    return f();
  } catch (const std::exception&) {
    g_last_error = "out of memory";  // short enough for the string's own buffer: no allocation
    return EB_INTERNAL;
  }
}

// Custom fields arrive as a msgpack map.
bool ReadFields(const char* fn, const void* data, std::size_t len, Fields& out) {
  if (data == nullptr && len == 0) return true;
  std::optional<Value> v = data ? engine_bridge::detail::Decode(data, len) : std::nullopt;
  if (!v || v->AsMap() == nullptr) {
    Fail(ErrorCode::InvalidArgument, std::string(fn) + ": fields must be one msgpack map");
    return false;
  }
  out = *v->AsMap();
  return true;
}

// A C string option: NULL and "" both mean absent.
std::string Opt(const char* s) { return s ? s : ""; }

// Copies `value` into a caller's buffer, NUL-terminated and truncated; returns its full length.
std::size_t CopyOut(const std::string& value, char* buf, std::size_t buf_len) noexcept {
  if (buf != nullptr && buf_len > 0) {
    const std::size_t n = std::min(value.size(), buf_len - 1);
    std::memcpy(buf, value.data(), n);
    buf[n] = '\0';
  }
  return value.size();
}

engine_bridge::ReplyCallback Adapt(eb_reply_fn fn, void* user) {
  if (fn == nullptr) return nullptr;
  return [fn, user](const engine_bridge::Reply& r) {
    const std::string body = engine_bridge::detail::Pack(r.body);
    const eb_reply reply{r.ok ? 1 : 0, r.type.c_str(), r.error_code.c_str(), r.message.c_str(), body.data(), body.size()};
    fn(user, &reply);
  };
}

engine_bridge::PurchaseCallback AdaptPurchase(eb_purchase_fn fn, void* user) {
  return [fn, user](const engine_bridge::PurchaseResult& r) {
    const eb_purchase_result result{r.id.c_str(), r.ok ? 1 : 0, r.error_code.c_str(), r.message.c_str(),
                                    r.is_valid ? 1 : 0, r.is_duplicate ? 1 : 0, r.reason.c_str(), r.store.c_str(),
                                    r.verified_at ? 1 : 0, r.verified_at.value_or(0), r.Grantable() ? 1 : 0};
    fn(user, &result);
  };
}

engine_bridge::SessionOptions SessionOptionsOf(const eb_session_options* o) {
  engine_bridge::SessionOptions out;
  if (o == nullptr) return out;
  out.user_id = Opt(o->user_id);
  out.user_ip = Opt(o->user_ip);
  if (o->has_timestamp) out.timestamp_ms = o->timestamp_ms;
  return out;
}

template <typename T>
bool ParseNumber(const char* value, T& out) {
  const char* end = value + std::strlen(value);
  auto [ptr, ec] = std::from_chars(value, end, out);
  return ec == std::errc() && ptr == end;
}

}  // namespace

extern "C" {

const char* eb_last_error(void) { return g_last_error.c_str(); }
const char* eb_binding_version(void) { return engine_bridge::kBindingVersion; }

eb_client* eb_client_new(void) {
  try {
    return new eb_client();
  } catch (const std::exception&) {
    return nullptr;
  }
}
void eb_client_free(eb_client* client) { delete client; }

eb_status eb_client_set(eb_client* client, const char* name, const char* value) {
  if (client == nullptr) return NullClient("eb_client_set");
  if (name == nullptr || value == nullptr) return Fail(ErrorCode::InvalidArgument, "eb_client_set: name or value is NULL");
  return Guard([&] {
    const std::string_view n(name);
    engine_bridge::GameInfo& g = client->game;
    engine_bridge::Settings& s = client->settings;
    const std::pair<const char*, std::string*> texts[] = {
        {"game_build", &g.game_build}, {"device_id", &g.device_id}, {"user_id", &g.user_id},
        {"engine", &g.engine}, {"engine_version", &g.engine_version}, {"platform", &g.platform},
        {"os_version", &g.os_version}, {"device", &g.device}, {"manufacturer", &g.manufacturer},
        {"ingress_endpoint", &s.ingress_endpoint}, {"configs_endpoint", &s.configs_endpoint},
        {"daemon_log_path", &s.daemon.log_path}, {"game", &s.game}, {"daemon_executable", &s.daemon.executable},
        {"relay_endpoint", &s.relay.endpoint}, {"relay_configs_endpoint", &s.relay.configs_endpoint},
        {"relay_public_key", &s.relay.public_key}, {"relay_key_file", &s.relay.key_file},
    };
    for (const auto& [key, field] : texts) {
      if (n == key) {
        *field = value;
        return Report(Status());
      }
    }
    const std::pair<const char*, std::chrono::milliseconds*> durations[] = {
        {"send_interval_ms", &s.send_interval}, {"request_timeout_ms", &s.request_timeout},
        {"shutdown_grace_ms", &s.shutdown_grace}, {"daemon_probe_ms", &s.daemon.probe},
        {"daemon_stop_timeout_ms", &s.daemon.stop_timeout},
    };
    for (const auto& [key, field] : durations) {
      if (n == key) {
        long long ms;
        if (!ParseNumber(value, ms)) return Fail(ErrorCode::InvalidArgument, std::string("eb_client_set: ") + name + " must be an integer");
        *field = std::chrono::milliseconds(ms);
        return Report(Status());
      }
    }
    const std::pair<const char*, std::size_t*> counts[] = {{"queue_capacity", &s.queue_capacity}, {"max_in_flight", &s.max_in_flight}};
    for (const auto& [key, field] : counts) {
      if (n == key) {
        if (!ParseNumber(value, *field)) return Fail(ErrorCode::InvalidArgument, std::string("eb_client_set: ") + name + " must be a non-negative integer");
        return Report(Status());
      }
    }
    if (n == "daemon_command" || n == "daemon_arguments") {
      std::vector<std::string>& list = n == "daemon_command" ? s.daemon.command : s.daemon.arguments;
      list.clear();
      std::string_view rest(value);
      while (!rest.empty()) {
        std::size_t sep = rest.find('\x1f');
        list.emplace_back(rest.substr(0, sep));
        rest = sep == std::string_view::npos ? std::string_view() : rest.substr(sep + 1);
      }
      return Report(Status());
    }
    return Fail(ErrorCode::InvalidArgument, std::string("eb_client_set: unknown setting \"") + name + "\"");
  });
}

eb_status eb_connect(eb_client* client) {
  if (client == nullptr) return NullClient("eb_connect");
  return Guard([&] { return Report(client->client.Connect(client->game, client->settings)); });
}

void eb_shutdown(eb_client* client, int grace_ms) {
  if (client == nullptr) return;
  client->client.Shutdown(grace_ms < 0 ? std::nullopt : std::optional(std::chrono::milliseconds(grace_ms)));
}

eb_status eb_track_design(eb_client* client, const char* event_id, int has_value, double value) {
  if (client == nullptr) return NullClient("eb_track_design");
  return Guard([&] { return Report(client->client.TrackDesign(event_id, has_value ? std::optional(value) : std::nullopt)); });
}

eb_status eb_track_business(eb_client* client, const char* currency, int64_t amount_cents, const char* item_type,
                            const char* item_id, const char* cart_type) {
  if (client == nullptr) return NullClient("eb_track_business");
  return Guard([&] { return Report(client->client.TrackBusiness(currency, amount_cents, item_type, item_id, cart_type)); });
}

eb_status eb_track_progression(eb_client* client, eb_progression_status status, const char* progression01,
                               const char* progression02, const char* progression03, int has_score, int64_t score,
                               int has_attempt, int64_t attempt_num) {
  if (client == nullptr) return NullClient("eb_track_progression");
  return Guard([&] {
    return Report(client->client.TrackProgression(static_cast<engine_bridge::ProgressionStatus>(status), progression01,
                                                  progression02, progression03,
                                                  has_score ? std::optional(score) : std::nullopt,
                                                  has_attempt ? std::optional(attempt_num) : std::nullopt));
  });
}

eb_status eb_track_resource(eb_client* client, eb_resource_flow flow, const char* currency, double amount,
                            const char* item_type, const char* item_id) {
  if (client == nullptr) return NullClient("eb_track_resource");
  return Guard([&] {
    return Report(client->client.TrackResource(static_cast<engine_bridge::ResourceFlow>(flow), currency, amount,
                                               item_type, item_id));
  });
}

eb_status eb_track_error(eb_client* client, eb_severity severity, const char* message) {
  if (client == nullptr) return NullClient("eb_track_error");
  return Guard([&] { return Report(client->client.TrackError(static_cast<engine_bridge::ErrorSeverity>(severity), message)); });
}

eb_status eb_track_ad(eb_client* client, eb_ad_action action, eb_ad_type ad_type, const char* sdk_name,
                      const char* placement, int64_t duration_ms) {
  if (client == nullptr) return NullClient("eb_track_ad");
  return Guard([&] {
    return Report(client->client.TrackAd(static_cast<engine_bridge::AdAction>(action),
                                         static_cast<engine_bridge::AdType>(ad_type), sdk_name, placement,
                                         duration_ms < 0 ? std::nullopt : std::optional(duration_ms)));
  });
}

eb_status eb_track_ad_with_reason(eb_client* client, eb_ad_action action, eb_ad_type ad_type, const char* sdk_name,
                                  const char* placement, int64_t duration_ms, int has_reason,
                                  eb_ad_fail_show_reason reason) {
  if (client == nullptr) return NullClient("eb_track_ad_with_reason");
  return Guard([&] {
    return Report(client->client.TrackAd(
        static_cast<engine_bridge::AdAction>(action), static_cast<engine_bridge::AdType>(ad_type), sdk_name, placement,
        duration_ms < 0 ? std::nullopt : std::optional(duration_ms),
        has_reason ? std::optional(static_cast<engine_bridge::AdFailShowReason>(reason)) : std::nullopt));
  });
}

eb_status eb_track_impression(eb_client* client, const char* ad_network_name, const char* ad_network_version,
                              const void* impression_data, size_t impression_data_len) {
  if (client == nullptr) return NullClient("eb_track_impression");
  return Guard([&] {
    Fields data;
    if (!ReadFields("eb_track_impression", impression_data, impression_data_len, data)) return EB_INVALID_ARGUMENT;
    return Report(client->client.TrackImpression(ad_network_name, ad_network_version, data));
  });
}

eb_status eb_track_custom(eb_client* client, const char* name, const void* fields, size_t fields_len) {
  if (client == nullptr) return NullClient("eb_track_custom");
  return Guard([&] {
    Fields f;
    if (!ReadFields("eb_track_custom", fields, fields_len, f)) return EB_INVALID_ARGUMENT;
    return Report(client->client.TrackCustom(name, f));
  });
}

eb_status eb_track(eb_client* client, eb_category category, const void* fields, size_t fields_len) {
  if (client == nullptr) return NullClient("eb_track");
  return eb_track_with(client, category, fields, fields_len, nullptr);
}

eb_status eb_track_with(eb_client* client, eb_category category, const void* fields, size_t fields_len,
                        const eb_event_options* options) {
  if (client == nullptr) return NullClient("eb_track_with");
  return Guard([&] {
    Fields f;
    if (!ReadFields("eb_track_with", fields, fields_len, f)) return EB_INVALID_ARGUMENT;
    engine_bridge::EventOptions o;
    if (options != nullptr) {
      o.id = Opt(options->id);
      o.user_id = Opt(options->user_id);
      if (options->has_timestamp) o.timestamp_ms = options->timestamp_ms;
    }
    return Report(client->client.Track(static_cast<engine_bridge::EventCategory>(category), f, o));
  });
}

eb_status eb_start_session(eb_client* client, eb_reply_fn on_reply, void* user) {
  if (client == nullptr) return NullClient("eb_start_session");
  return eb_start_session_with(client, nullptr, on_reply, user);
}

eb_status eb_end_session(eb_client* client, eb_reply_fn on_reply, void* user) {
  if (client == nullptr) return NullClient("eb_end_session");
  return eb_end_session_with(client, nullptr, on_reply, user);
}

eb_status eb_start_session_with(eb_client* client, const eb_session_options* options, eb_reply_fn on_reply, void* user) {
  if (client == nullptr) return NullClient("eb_start_session_with");
  return Guard([&] { return Report(client->client.StartSession(Adapt(on_reply, user), SessionOptionsOf(options))); });
}

eb_status eb_end_session_with(eb_client* client, const eb_session_options* options, eb_reply_fn on_reply, void* user) {
  if (client == nullptr) return NullClient("eb_end_session_with");
  return Guard([&] { return Report(client->client.EndSession(Adapt(on_reply, user), SessionOptionsOf(options))); });
}

eb_status eb_flush(eb_client* client, eb_reply_fn on_reply, void* user) {
  if (client == nullptr) return NullClient("eb_flush");
  return Guard([&] { return Report(client->client.Flush(Adapt(on_reply, user))); });
}

eb_status eb_set_consent(eb_client* client, eb_consent_state analytics, eb_consent_state ip_ads, const char* user_id,
                         eb_reply_fn on_reply, void* user) {
  if (client == nullptr) return NullClient("eb_set_consent");
  return Guard([&] {
    engine_bridge::Consent c;
    c.analytics = static_cast<engine_bridge::ConsentState>(analytics);
    c.ip_ads = static_cast<engine_bridge::ConsentState>(ip_ads);
    c.user_id = Opt(user_id);
    return Report(client->client.SetConsent(c, Adapt(on_reply, user)));
  });
}

eb_status eb_forget(eb_client* client, const char* user_id, eb_reply_fn on_reply, void* user) {
  if (client == nullptr) return NullClient("eb_forget");
  return Guard([&] { return Report(client->client.Forget(Opt(user_id), Adapt(on_reply, user))); });
}

eb_status eb_verify_purchase(eb_client* client, const char* id, eb_purchase_store store, const char* receipt,
                             const char* signature, double price_usd, eb_purchase_fn on_result, void* user,
                             char* out_id) {
  if (client == nullptr) return NullClient("eb_verify_purchase");
  if (receipt == nullptr) return Fail(ErrorCode::InvalidArgument, "eb_verify_purchase: receipt is NULL");
  if (on_result == nullptr) return Fail(ErrorCode::InvalidArgument, "eb_verify_purchase: on_result is NULL");
  return Guard([&] {
    engine_bridge::Purchase p;
    p.id = Opt(id);
    p.store = static_cast<engine_bridge::PurchaseStore>(store);
    p.receipt = receipt;
    p.signature = Opt(signature);
    if (!(price_usd < 0)) p.price_usd = price_usd;  // NaN is passed on, to be refused with a clear error
    std::string chosen;
    Status s = client->client.VerifyPurchase(p, AdaptPurchase(on_result, user), &chosen);
    if (s && out_id != nullptr) CopyOut(chosen, out_id, EB_PURCHASE_ID_SIZE);  // checked: at most 64 chars
    return Report(s);
  });
}

eb_status eb_set_purchase_handler(eb_client* client, eb_purchase_fn handler, void* user) {
  if (client == nullptr) return NullClient("eb_set_purchase_handler");
  return Guard([&] {
    client->client.SetPurchaseHandler(handler ? AdaptPurchase(handler, user) : nullptr);
    return Report(Status());
  });
}

eb_status eb_set_refusal_handler(eb_client* client, eb_refusal_fn handler, void* user) {
  if (client == nullptr) return NullClient("eb_set_refusal_handler");
  return Guard([&] {
    engine_bridge::ProviderRefusalCallback adapted;
    if (handler != nullptr) {
      adapted = [handler, user](const engine_bridge::ProviderRefusal& r) {
        const eb_provider_refusal refusal{r.event_id.c_str(), r.provider.c_str(), r.rule.c_str()};
        handler(user, &refusal);
      };
    }
    client->client.SetProviderRefusalHandler(std::move(adapted));
    return Report(Status());
  });
}

eb_status eb_set_connection_handler(eb_client* client, eb_connection_fn handler, void* user) {
  if (client == nullptr) return NullClient("eb_set_connection_handler");
  return Guard([&] {
    engine_bridge::ConnectionCallback adapted;
    if (handler != nullptr) {
      adapted = [handler, user](engine_bridge::ConnectionState state, std::string_view detail) {
        const std::string text(detail);
        handler(user, static_cast<eb_connection_state>(state), text.c_str());
      };
    }
    client->client.SetConnectionHandler(std::move(adapted));
    return Report(Status());
  });
}

eb_status eb_set_log_handler(eb_client* client, eb_log_fn handler, void* user) {
  if (client == nullptr) return NullClient("eb_set_log_handler");
  return Guard([&] {
    engine_bridge::LogCallback adapted;
    if (handler != nullptr) {
      adapted = [handler, user](engine_bridge::LogLevel level, std::string_view message) {
        const std::string text(message);
        handler(user, static_cast<eb_log_level>(level), text.c_str());
      };
    }
    client->client.SetLogHandler(std::move(adapted));
    return Report(Status());
  });
}

eb_status eb_subscribe_config(eb_client* client, const char* key, eb_config_fn callback, void* user, uint64_t* out_id) {
  if (client == nullptr) return NullClient("eb_subscribe_config");
  if (callback == nullptr) return Fail(ErrorCode::InvalidArgument, "eb_subscribe_config: callback is NULL");
  return Guard([&] {
    engine_bridge::SubscriptionId id = 0;
    Status s = client->client.SubscribeConfig(
        key,
        [callback, user](std::string_view k, const Value& v) {
          const std::string name(k);
          const std::string packed = engine_bridge::detail::Pack(v);
          callback(user, name.c_str(), packed.data(), packed.size());
        },
        &id);
    if (s && out_id != nullptr) *out_id = id;
    return Report(s);
  });
}

void eb_unsubscribe(eb_client* client, uint64_t id) {
  if (client != nullptr) client->client.Unsubscribe(id);
}

size_t eb_config_string(const eb_client* client, const char* key, const char* fallback, char* buf, size_t buf_len) {
  try {
    std::string value = fallback ? fallback : "";
    if (client != nullptr) value = client->client.GetString(key, value);
    return CopyOut(value, buf, buf_len);
  } catch (const std::exception&) {
    return CopyOut({}, buf, buf_len);
  }
}

int64_t eb_config_int(const eb_client* client, const char* key, int64_t fallback) {
  return client ? client->client.GetInt(key, fallback) : fallback;
}

double eb_config_double(const eb_client* client, const char* key, double fallback) {
  return client ? client->client.GetDouble(key, fallback) : fallback;
}

int eb_config_bool(const eb_client* client, const char* key, int fallback) {
  return client ? (client->client.GetBool(key, fallback != 0) ? 1 : 0) : fallback;
}

size_t eb_poll(eb_client* client) {
  if (client == nullptr) return 0;
  try {
    return client->client.Poll();
  } catch (const std::exception&) {
    return 0;  // an adapter ran out of memory; the callbacks after it run at the next eb_poll
  }
}

void eb_get_stats(const eb_client* client, eb_stats* out) {
  if (client == nullptr || out == nullptr) return;
  const engine_bridge::Stats s = client->client.GetStats();
  *out = eb_stats{s.connected ? 1 : 0, s.tracked, s.queued, s.in_flight, s.acknowledged, s.stored, s.duplicates,
                  s.rejected, s.dropped, s.resent, s.reconnects, s.daemon_pid,
                  static_cast<eb_connection_state>(s.connection), s.provider_refusals, s.abandoned};
}

size_t eb_last_rejection(const eb_client* client, char* buf, size_t buf_len) {
  return CopyOut(client ? client->client.GetStats().last_rejection : std::string(), buf, buf_len);
}

size_t eb_connection_error(const eb_client* client, char* buf, size_t buf_len) {
  return CopyOut(client ? client->client.GetStats().last_error : std::string(), buf, buf_len);
}

}  // extern "C"
