/* engine-bridge C ABI: the C++ client behind plain functions, for C code and for other languages'
 * foreign-function interfaces (C# P/Invoke, Python ctypes, GDNative, ...).
 *
 * Conventions, chosen so that any FFI can bind it without headers of its own:
 * - an opaque handle (eb_client*) made by eb_client_new and freed by eb_client_free;
 * - settings by name through eb_client_set (strings only), so the ABI never changes shape;
 * - every function that can fail returns an eb_status; eb_last_error() then holds a readable message
 *   (per thread, valid until the next call on that thread);
 * - free-form data (custom fields, config values, reply bodies) crosses as msgpack bytes;
 * - callbacks run inside eb_poll, on the thread that calls it;
 * - nothing throws: a C++ exception never crosses this ABI (memory running out is EB_INTERNAL).
 * Strings are UTF-8 and NUL-terminated; NULL where a string is required gives EB_INVALID_ARGUMENT.
 */
#ifndef ENGINE_BRIDGE_H
#define ENGINE_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(ENGINE_BRIDGE_SHARED_BUILD)
#define EB_API __declspec(dllexport)
#elif defined(_WIN32) && defined(ENGINE_BRIDGE_SHARED)
#define EB_API __declspec(dllimport)
#elif defined(__GNUC__)
#define EB_API __attribute__((visibility("default")))
#else
#define EB_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The values match engine_bridge::ErrorCode. */
typedef enum eb_status {
  EB_OK = 0,
  EB_INVALID_ARGUMENT = 1,
  EB_NOT_CONNECTED = 2,
  EB_ALREADY_CONNECTED = 3,
  EB_QUEUE_FULL = 4,
  EB_INTERNAL = 5
} eb_status;

/* These match the C++ enums of the same names, value for value. */
typedef enum eb_category {
  EB_DESIGN = 0, EB_BUSINESS = 1, EB_PROGRESSION = 2, EB_RESOURCE = 3, EB_ERROR = 4, EB_ADS = 5, EB_CUSTOM = 6,
  EB_IMPRESSION = 7
} eb_category;
typedef enum eb_progression_status { EB_PROGRESSION_START = 0, EB_PROGRESSION_FAIL = 1, EB_PROGRESSION_COMPLETE = 2 } eb_progression_status;
typedef enum eb_resource_flow { EB_RESOURCE_SOURCE = 0, EB_RESOURCE_SINK = 1 } eb_resource_flow;
typedef enum eb_severity {
  EB_SEVERITY_DEBUG = 0, EB_SEVERITY_INFO = 1, EB_SEVERITY_WARNING = 2, EB_SEVERITY_ERROR = 3, EB_SEVERITY_CRITICAL = 4
} eb_severity;
typedef enum eb_ad_action {
  EB_AD_CLICKED = 0, EB_AD_SHOW = 1, EB_AD_FAILED_SHOW = 2, EB_AD_REWARD_RECEIVED = 3, EB_AD_REQUEST = 4, EB_AD_LOADED = 5
} eb_ad_action;
typedef enum eb_ad_type {
  EB_AD_VIDEO = 0, EB_AD_REWARDED_VIDEO = 1, EB_AD_PLAYABLE = 2, EB_AD_INTERSTITIAL = 3, EB_AD_OFFER_WALL = 4, EB_AD_BANNER = 5,
  EB_AD_APP_OPEN = 6
} eb_ad_type;
typedef enum eb_ad_fail_show_reason {
  EB_AD_FAIL_UNKNOWN = 0, EB_AD_FAIL_OFFLINE = 1, EB_AD_FAIL_NO_FILL = 2, EB_AD_FAIL_INTERNAL_ERROR = 3,
  EB_AD_FAIL_INVALID_REQUEST = 4, EB_AD_FAIL_UNABLE_TO_PRECACHE = 5
} eb_ad_fail_show_reason;
typedef enum eb_purchase_store { EB_STORE_APPLE = 0, EB_STORE_GOOGLE_PLAY = 1 } eb_purchase_store;
typedef enum eb_connection_state {
  EB_CONNECTING = 0, EB_CONNECTED = 1, EB_UNREACHABLE = 2, EB_WRONG_PEER = 3, EB_LAUNCH_FAILED = 4
} eb_connection_state;
typedef enum eb_log_level { EB_LOG_INFO = 0, EB_LOG_WARNING = 1, EB_LOG_ERROR = 2 } eb_log_level;

typedef struct eb_client eb_client;

/* A reply to a session or flush request; its pointers live only during the callback. */
typedef struct eb_reply {
  int ok;                  /* 0: error_code and message say why */
  const char* type;        /* "session", "flushed" or "error" */
  const char* error_code;  /* "" when ok */
  const char* message;     /* "" when ok */
  const void* body;        /* the whole reply map, msgpack */
  size_t body_len;
} eb_reply;

typedef void (*eb_reply_fn)(void* user, const eb_reply* reply);

/* What became of a purchase (engine_bridge::PurchaseResult); its strings live only during the callback. */
typedef struct eb_purchase_result {
  const char* id;
  int ok;                  /* 0: the daemon refused the request (error_code, message); no verdict follows */
  const char* error_code;  /* "" when ok */
  const char* message;     /* "" when ok */
  int is_valid;            /* the store's server accepted the receipt */
  int is_duplicate;        /* the receipt had been verified before, for another purchase: a replay */
  const char* reason;      /* e.g. "verified by staq" */
  const char* store;       /* "apple" or "googleplay" */
  int has_verified_at;     /* verified_at is known (verdicts that came on the configs socket) */
  int64_t verified_at;     /* ms since the Unix epoch */
  int grantable;           /* ok, valid and not a duplicate: grant what was bought */
} eb_purchase_result;

typedef void (*eb_purchase_fn)(void* user, const eb_purchase_result* result);
/* Room for a purchase id and its NUL. */
#define EB_PURCHASE_ID_SIZE 65
/* An event the daemon stored but a provider's rules refuse (engine_bridge::ProviderRefusal); its strings live
 * only during the callback. */
typedef struct eb_provider_refusal {
  const char* event_id;
  const char* provider; /* e.g. "gameanalytics" */
  const char* rule;     /* the rule broken */
} eb_provider_refusal;
typedef void (*eb_refusal_fn)(void* user, const eb_provider_refusal* refusal);
/* detail: what happened, for people; valid only during the call. */
typedef void (*eb_connection_fn)(void* user, eb_connection_state state, const char* detail);
/* message: one console line, starting with "engine-bridge: "; valid only during the call. */
typedef void (*eb_log_fn)(void* user, eb_log_level level, const char* message);

/* Per-event options of eb_track_with (engine_bridge::EventOptions), for dedicated servers and replays. */
typedef struct eb_event_options {
  const char* id;       /* NULL or "": a fresh UUID v4; else 1-64 chars of A-Z a-z 0-9 - _ . : */
  const char* user_id;  /* NULL or "": the hello user; a dedicated server names the player */
  int has_timestamp;    /* 0: now */
  int64_t timestamp_ms; /* ms since the Unix epoch */
} eb_event_options;

/* A player's answer for one purpose of the consent dialog (engine_bridge::ConsentState). */
typedef enum eb_consent_state { EB_CONSENT_UNCHANGED = 0, EB_CONSENT_GRANTED = 1, EB_CONSENT_DENIED = 2 } eb_consent_state;

/* Options of eb_start_session_with / eb_end_session_with (engine_bridge::SessionOptions). */
typedef struct eb_session_options {
  const char* user_id;  /* NULL or "": the hello user */
  const char* user_ip;  /* NULL or "": none; sent to providers as X-Forwarded-For */
  int has_timestamp;    /* 0: the daemon's clock */
  int64_t timestamp_ms;
} eb_session_options;

/* value: msgpack of the key's new value (nil when the key was removed); valid only during the call. */
typedef void (*eb_config_fn)(void* user, const char* key, const void* value, size_t value_len);

/* engine_bridge::Stats; the strings come from eb_last_rejection and eb_connection_error. */
typedef struct eb_stats {
  int connected;
  uint64_t tracked, queued, in_flight, acknowledged, stored, duplicates, rejected, dropped, resent, reconnects;
  int64_t daemon_pid;
  eb_connection_state connection;
  uint64_t provider_refusals, abandoned;
} eb_stats;

/* The thread's last error message ("" after a success). */
EB_API const char* eb_last_error(void);
/* The binding's version, also sent to the daemon in hello. */
EB_API const char* eb_binding_version(void);

EB_API eb_client* eb_client_new(void);
/* Shuts down (with the configured grace) and frees. NULL is ignored. */
EB_API void eb_client_free(eb_client* client);

/* Settings by name, before eb_connect. Names: the GameInfo fields (game_build, device_id, user_id, engine,
 * engine_version, platform, os_version, device, manufacturer), the Settings fields (ingress_endpoint,
 * configs_endpoint, queue_capacity, max_in_flight, send_interval_ms, request_timeout_ms, shutdown_grace_ms)
 * and the launcher's (daemon_command: argv joined by '\x1f' unit separators, daemon_probe_ms,
 * daemon_log_path, daemon_stop_timeout_ms), the game id (game) and the bundled daemon (daemon_executable,
 * daemon_arguments: joined by '\x1f'), and straight to a relay instead of a local daemon (Settings::relay:
 * relay_endpoint, relay_configs_endpoint, relay_public_key, relay_key_file). Numbers are given as decimal
 * strings. */
EB_API eb_status eb_client_set(eb_client* client, const char* name, const char* value);
EB_API eb_status eb_connect(eb_client* client);
/* grace_ms < 0: the configured shutdown_grace. */
EB_API void eb_shutdown(eb_client* client, int grace_ms);

EB_API eb_status eb_track_design(eb_client* client, const char* event_id, int has_value, double value);
EB_API eb_status eb_track_business(eb_client* client, const char* currency, int64_t amount_cents, const char* item_type,
                                   const char* item_id, const char* cart_type /* NULL: none */);
/* progression02/03 may be NULL; has_score/has_attempt say whether score/attempt_num are sent. */
EB_API eb_status eb_track_progression(eb_client* client, eb_progression_status status, const char* progression01,
                                      const char* progression02, const char* progression03, int has_score,
                                      int64_t score, int has_attempt, int64_t attempt_num);
EB_API eb_status eb_track_resource(eb_client* client, eb_resource_flow flow, const char* currency, double amount,
                                   const char* item_type, const char* item_id);
EB_API eb_status eb_track_error(eb_client* client, eb_severity severity, const char* message);
/* duration_ms < 0: not sent. */
EB_API eb_status eb_track_ad(eb_client* client, eb_ad_action action, eb_ad_type ad_type, const char* sdk_name,
                             const char* placement, int64_t duration_ms);
/* eb_track_ad with the reason an ad failed to show (ad_fail_show_reason), sent when has_reason is not 0. */
EB_API eb_status eb_track_ad_with_reason(eb_client* client, eb_ad_action action, eb_ad_type ad_type,
                                         const char* sdk_name, const char* placement, int64_t duration_ms,
                                         int has_reason, eb_ad_fail_show_reason reason);
/* impression_data: a msgpack map, the ad network's impression record (NULL with impression_data_len 0: empty). */
EB_API eb_status eb_track_impression(eb_client* client, const char* ad_network_name, const char* ad_network_version,
                                     const void* impression_data, size_t impression_data_len);
/* fields: a msgpack map (NULL with fields_len 0: no fields). */
EB_API eb_status eb_track_custom(eb_client* client, const char* name, const void* fields, size_t fields_len);
EB_API eb_status eb_track(eb_client* client, eb_category category, const void* fields, size_t fields_len);
/* eb_track with the event's own id, user and time; options may be NULL. */
EB_API eb_status eb_track_with(eb_client* client, eb_category category, const void* fields, size_t fields_len,
                               const eb_event_options* options);

/* on_reply may be NULL (fire and forget). */
EB_API eb_status eb_start_session(eb_client* client, eb_reply_fn on_reply, void* user);
EB_API eb_status eb_end_session(eb_client* client, eb_reply_fn on_reply, void* user);
EB_API eb_status eb_flush(eb_client* client, eb_reply_fn on_reply, void* user);
/* The player's consent (protocol.md 4.10); user_id NULL or "": the hello user. */
EB_API eb_status eb_set_consent(eb_client* client, eb_consent_state analytics, eb_consent_state ip_ads,
                                const char* user_id, eb_reply_fn on_reply, void* user);
/* Erase the player (protocol.md 4.11); user_id NULL or "": the hello user. */
EB_API eb_status eb_forget(eb_client* client, const char* user_id, eb_reply_fn on_reply, void* user);
/* The sessions of another player (a dedicated server); options may be NULL. */
EB_API eb_status eb_start_session_with(eb_client* client, const eb_session_options* options, eb_reply_fn on_reply,
                                       void* user);
EB_API eb_status eb_end_session_with(eb_client* client, const eb_session_options* options, eb_reply_fn on_reply,
                                     void* user);
/* Sends a receipt for verification. id may be NULL (a UUID is generated); out_id (may be NULL, else
 * EB_PURCHASE_ID_SIZE bytes) receives the id. signature is required for Google Play only; price_usd < 0:
 * not sent. on_result (required) runs exactly once, in eb_poll: with the verdict as soon as the daemon has
 * it (in the reply, or later from the configs socket when the store's server was slow), or with the
 * daemon's error. */
EB_API eb_status eb_verify_purchase(eb_client* client, const char* id, eb_purchase_store store, const char* receipt,
                                    const char* signature, double price_usd, eb_purchase_fn on_result, void* user,
                                    char* out_id);
/* The game-wide handler, run in eb_poll, for verdicts on purchases this client did not send (made by an
 * earlier run, still pending then): each purchase id once per client. Verdicts that arrive while none is
 * set wait for one. handler NULL removes it. Callable before eb_connect. */
EB_API eb_status eb_set_purchase_handler(eb_client* client, eb_purchase_fn handler, void* user);

/* out_id (may be NULL) receives an id for eb_unsubscribe. */
EB_API eb_status eb_subscribe_config(eb_client* client, const char* key, eb_config_fn callback, void* user,
                                     uint64_t* out_id);
EB_API void eb_unsubscribe(eb_client* client, uint64_t id);
/* Copies the string value (or fallback) into buf, NUL-terminated and truncated to buf_len; returns the full
 * length, so a caller can retry with a larger buffer. */
EB_API size_t eb_config_string(const eb_client* client, const char* key, const char* fallback, char* buf,
                               size_t buf_len);
EB_API int64_t eb_config_int(const eb_client* client, const char* key, int64_t fallback);
EB_API double eb_config_double(const eb_client* client, const char* key, double fallback);
EB_API int eb_config_bool(const eb_client* client, const char* key, int fallback);

/* What the game hears of the daemon, in eb_poll; each callable before eb_connect, NULL removes the handler.
 * Refusals: every event a provider refuses (also counted in eb_stats.provider_refusals and warned about,
 * rate-limited, in the log). Connection: every change of state. Log: the binding's console lines (default,
 * without a handler: standard error). */
EB_API eb_status eb_set_refusal_handler(eb_client* client, eb_refusal_fn handler, void* user);
EB_API eb_status eb_set_connection_handler(eb_client* client, eb_connection_fn handler, void* user);
EB_API eb_status eb_set_log_handler(eb_client* client, eb_log_fn handler, void* user);

/* Runs ready callbacks on this thread; returns how many ran. */
EB_API size_t eb_poll(eb_client* client);
EB_API void eb_get_stats(const eb_client* client, eb_stats* out);
/* Stats::last_rejection (why the daemon refused the last refused event) and Stats::last_error (why the daemon
 * cannot be used; "" while connected), copied like eb_config_string: NUL-terminated, truncated to buf_len,
 * the full length returned. */
EB_API size_t eb_last_rejection(const eb_client* client, char* buf, size_t buf_len);
EB_API size_t eb_connection_error(const eb_client* client, char* buf, size_t buf_len);

#ifdef __cplusplus
}
#endif

#endif /* ENGINE_BRIDGE_H */
