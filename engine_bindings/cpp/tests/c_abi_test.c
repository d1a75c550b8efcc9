/* The C ABI against real daemons, from plain C99. Driven by tests/bindings/test_cpp.py, which starts a
 * daemon whose [configs] has difficulty = "hard" and max_lives = 5 and no providers, a second one whose
 * staq provider is a local staq sandbox that calls RECEIPT (base64) valid, and a third whose GameAnalytics
 * provider is the local GameAnalytics sandbox; nothing listens at DEAD.
 *
 *   engine_bridge_c_test INGRESS CONFIGS STAQ_INGRESS STAQ_CONFIGS RECEIPT GA_INGRESS GA_CONFIGS DEAD
 *
 * Prints one line per check and ends with "N passed, M failed". */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <engine_bridge/engine_bridge.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int passed, failed;

static void check(int ok, const char* name) {
  if (ok) passed++; else failed++;
  printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name, ok ? "" : ": ", ok ? "" : eb_last_error());
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* What the callbacks saw. */
static int flush_ok, difficulty_calls;
static unsigned char difficulty_value[16];
static size_t difficulty_len;

static void on_flush(void* user, const eb_reply* r) {
  (void)user;
  flush_ok = r->ok && strcmp(r->type, "flushed") == 0 && r->body_len > 0;
}

/* Purchase results, copied out of the callback (its strings live only during the call). */
#define MAX_SEEN 8
typedef struct seen_purchases {
  int count; /* every call, also those past MAX_SEEN */
  struct {
    char id[EB_PURCHASE_ID_SIZE], error_code[32], store[16];
    int ok, is_valid, is_duplicate, grantable, has_verified_at;
  } items[MAX_SEEN];
} seen_purchases;

static void on_purchase(void* user, const eb_purchase_result* r) {
  seen_purchases* seen = (seen_purchases*)user;
  if (seen->count < MAX_SEEN) {
    snprintf(seen->items[seen->count].id, EB_PURCHASE_ID_SIZE, "%s", r->id);
    snprintf(seen->items[seen->count].error_code, 32, "%s", r->error_code);
    snprintf(seen->items[seen->count].store, 16, "%s", r->store);
    seen->items[seen->count].ok = r->ok;
    seen->items[seen->count].is_valid = r->is_valid;
    seen->items[seen->count].is_duplicate = r->is_duplicate;
    seen->items[seen->count].grantable = r->grantable;
    seen->items[seen->count].has_verified_at = r->has_verified_at;
  }
  seen->count++;
}

static void on_difficulty(void* user, const char* key, const void* value, size_t len) {
  (void)user;
  if (strcmp(key, "difficulty") != 0 || len > sizeof difficulty_value) return;
  memcpy(difficulty_value, value, len);
  difficulty_len = len;
  difficulty_calls++;
}

/* What the refusal, connection and log handlers saw. */
typedef struct heard {
  int refusals, warnings, connected, unreachable, launch_failed;
  char event_id[EB_PURCHASE_ID_SIZE], provider[32], rule[256], warning[512], detail[512];
} heard;

static void on_refusal(void* user, const eb_provider_refusal* r) {
  heard* h = (heard*)user;
  h->refusals++;
  snprintf(h->event_id, sizeof h->event_id, "%s", r->event_id);
  snprintf(h->provider, sizeof h->provider, "%s", r->provider);
  snprintf(h->rule, sizeof h->rule, "%s", r->rule);
}

static void on_log(void* user, eb_log_level level, const char* message) {
  heard* h = (heard*)user;
  if (level != EB_LOG_WARNING) return;
  h->warnings++;
  snprintf(h->warning, sizeof h->warning, "%s", message);
}

static void on_connection(void* user, eb_connection_state state, const char* detail) {
  heard* h = (heard*)user;
  snprintf(h->detail, sizeof h->detail, "%s", detail);
  if (state == EB_CONNECTED) h->connected++;
  if (state == EB_UNREACHABLE) h->unreachable++;
  if (state == EB_LAUNCH_FAILED) h->launch_failed++;
}

static int session_ok;
static void on_session(void* user, const eb_reply* r) {
  (void)user;
  session_ok = r->ok && strcmp(r->type, "session") == 0;
}

/* A client of `device` at INGRESS/CONFIGS, not yet connected. */
static eb_client* client_for(const char* device, const char* ingress, const char* configs) {
  eb_client* c = eb_client_new();
  if (eb_client_set(c, "game_build", "3.1.0") != EB_OK || eb_client_set(c, "device_id", device) != EB_OK ||
      eb_client_set(c, "ingress_endpoint", ingress) != EB_OK || eb_client_set(c, "configs_endpoint", configs) != EB_OK) {
    eb_client_free(c);
    return NULL;
  }
  return c;
}

/* Polls until *flag is set or about `ms` milliseconds passed. */
static int wait_flag(eb_client* c, const int* flag, long ms) {
  for (long waited = 0; waited < ms && !*flag; waited += 5) {
    eb_poll(c);
    sleep_ms(5);
  }
  eb_poll(c);
  return *flag;
}

static int all_acked(const eb_client* c) {
  eb_stats s;
  eb_get_stats(c, &s);
  return s.queued == 0 && s.acknowledged == s.tracked;
}

int main(int argc, char** argv) {
  if (argc < 13) {
    fprintf(stderr, "usage: engine_bridge_c_test INGRESS CONFIGS STAQ_INGRESS STAQ_CONFIGS RECEIPT GA_INGRESS GA_CONFIGS "
                    "DEAD LAUNCHER LAUNCH_INGRESS LAUNCH_CONFIGS LAUNCH_DATA\n");
    return 2;
  }
  check(strcmp(eb_binding_version(), "2.0.0") == 0, "eb_binding_version");
  eb_client* c = eb_client_new();
  check(c != NULL, "eb_client_new");
  check(eb_client_set(c, "no_such_setting", "1") == EB_INVALID_ARGUMENT && strstr(eb_last_error(), "no_such_setting"),
        "unknown setting is refused by name");
  check(eb_client_set(c, "queue_capacity", "lots") == EB_INVALID_ARGUMENT, "non-numeric queue_capacity is refused");
  check(eb_client_set(c, "game_build", NULL) == EB_INVALID_ARGUMENT, "NULL setting value is refused");
  check(eb_track_design(c, "ui:play", 0, 0) == EB_NOT_CONNECTED, "tracking before eb_connect: EB_NOT_CONNECTED");
  check(eb_connect(c) == EB_INVALID_ARGUMENT && strstr(eb_last_error(), "game_build"), "eb_connect without game_build");

  /* Settings::relay by name: its public key is checked at eb_connect, and a relay never goes with a launch. */
  {
    eb_client* r = eb_client_new();
    int set = eb_client_set(r, "game_build", "3.1.0") == EB_OK && eb_client_set(r, "device_id", "c-relay") == EB_OK &&
              eb_client_set(r, "relay_endpoint", "tcp://127.0.0.1:9") == EB_OK &&
              eb_client_set(r, "relay_configs_endpoint", "tcp://127.0.0.1:10") == EB_OK &&
              eb_client_set(r, "relay_key_file", "/nonexistent-dir/engine-bridge.key") == EB_OK &&
              eb_client_set(r, "relay_public_key", "not-a-key") == EB_OK;
    check(set, "eb_client_set of the relay_* settings");
    check(eb_connect(r) == EB_INVALID_ARGUMENT && strstr(eb_last_error(), "relay.public_key"),
          "eb_connect with a relay key that is not 40 Z85 characters");
    eb_client_set(r, "relay_public_key", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
    eb_client_set(r, "daemon_executable", "engine-bridge/engine-bridge");
    check(eb_connect(r) == EB_INVALID_ARGUMENT && strstr(eb_last_error(), "never launches"),
          "eb_connect with a relay and a daemon to launch");
    eb_client_set(r, "daemon_executable", "");
    check(eb_connect(r) == EB_INTERNAL && strstr(eb_last_error(), "relay.key_file"),
          "eb_connect with a key file that cannot be made");
    eb_client_free(r);
  }

  int ok = eb_client_set(c, "game_build", "3.1.0") == EB_OK && eb_client_set(c, "device_id", "c-abi-device") == EB_OK &&
           eb_client_set(c, "engine", "custom") == EB_OK && eb_client_set(c, "ingress_endpoint", argv[1]) == EB_OK &&
           eb_client_set(c, "configs_endpoint", argv[2]) == EB_OK && eb_client_set(c, "queue_capacity", "5000") == EB_OK;
  check(ok, "eb_client_set");
  check(eb_connect(c) == EB_OK, "eb_connect");
  check(eb_connect(c) == EB_ALREADY_CONNECTED, "eb_connect twice: EB_ALREADY_CONNECTED");

  /* one event of each category */
  static const unsigned char generic[] = {0x81, 0xa8, 'e', 'v', 'e', 'n', 't', '_', 'i', 'd',
                                          0xa9, 'c', ':', 'g', 'e', 'n', 'e', 'r', 'i', 'c'};
  static const unsigned char level[] = {0x81, 0xa5, 'l', 'e', 'v', 'e', 'l', 0x03};
  check(eb_track_design(c, "c:design", 1, 2.5) == EB_OK, "eb_track_design");
  check(eb_track_business(c, "EUR", 199, "coins", "bag", NULL) == EB_OK, "eb_track_business");
  check(eb_track_progression(c, EB_PROGRESSION_FAIL, "w1", "l3", NULL, 1, 10, 0, 0) == EB_OK, "eb_track_progression");
  check(eb_track_resource(c, EB_RESOURCE_SOURCE, "gems", 5, "reward", "chest") == EB_OK, "eb_track_resource");
  check(eb_track_error(c, EB_SEVERITY_WARNING, "low memory") == EB_OK, "eb_track_error");
  check(eb_track_ad(c, EB_AD_CLICKED, EB_AD_BANNER, "admob", "menu", -1) == EB_OK, "eb_track_ad");
  check(eb_track_ad_with_reason(c, EB_AD_FAILED_SHOW, EB_AD_APP_OPEN, "admob", "launch", -1, 1, EB_AD_FAIL_NO_FILL) ==
            EB_OK, "eb_track_ad_with_reason");
  static const unsigned char revenue[] = "\x82\xa7" "revenue" "\xcb\x3f\x84\x7a\xe1\x47\xae\x14\x7b" "\xa8" "currency"
                                         "\xa3" "USD";
  check(eb_track_impression(c, "max", "12.4.1", revenue, sizeof revenue - 1) == EB_OK, "eb_track_impression");
  check(eb_track_custom(c, "c_custom", level, sizeof level) == EB_OK, "eb_track_custom");
  check(eb_track(c, EB_DESIGN, generic, sizeof generic) == EB_OK, "eb_track (generic)");

  /* bad arguments: an error code and a message, never a crash */
  check(eb_track_design(c, NULL, 0, 0) == EB_INVALID_ARGUMENT && strstr(eb_last_error(), "null"), "NULL event_id");
  check(eb_track_custom(c, NULL, NULL, 0) == EB_INVALID_ARGUMENT, "NULL custom name");
  check(eb_track_resource(c, EB_RESOURCE_SINK, "gems", NAN, "shop", "hat") == EB_INVALID_ARGUMENT &&
            strstr(eb_last_error(), "finite"), "NaN amount");
  check(eb_track_custom(c, "x", "\xc1", 1) == EB_INVALID_ARGUMENT && strstr(eb_last_error(), "msgpack map"),
        "fields that are not msgpack");
  check(eb_track_custom(c, "x", NULL, 4) == EB_INVALID_ARGUMENT, "NULL fields with a length");
  check(eb_track_error(c, (eb_severity)42, "m") == EB_INVALID_ARGUMENT, "severity out of range");
  check(eb_track_progression(c, (eb_progression_status)9, "w", NULL, NULL, 0, 0, 0, 0) == EB_INVALID_ARGUMENT,
        "progression status out of range");
  check(eb_track(c, (eb_category)8, generic, sizeof generic) == EB_INVALID_ARGUMENT, "category out of range");
  check(eb_track(c, EB_IMPRESSION, generic, sizeof generic) == EB_INVALID_ARGUMENT && strstr(eb_last_error(), "ad_network_name"),
        "an impression without its fields");
  check(eb_track_impression(c, "max", "1.0", "\xc1", 1) == EB_INVALID_ARGUMENT && strstr(eb_last_error(), "msgpack map"),
        "impression_data that is not msgpack");
  check(eb_track_ad_with_reason(c, EB_AD_FAILED_SHOW, EB_AD_BANNER, "admob", "menu", -1, 1, (eb_ad_fail_show_reason)6) ==
            EB_INVALID_ARGUMENT && strstr(eb_last_error(), "fail_show_reason"), "ad fail_show_reason out of range");
  check(eb_track_design(NULL, "a:b", 0, 0) == EB_INVALID_ARGUMENT && strstr(eb_last_error(), "client is NULL"),
        "NULL client");
  seen_purchases refused = {0};
  check(eb_verify_purchase(c, "p1", EB_STORE_APPLE, "cg==", NULL, -1, NULL, NULL, NULL) == EB_INVALID_ARGUMENT &&
            strstr(eb_last_error(), "on_result"), "purchase without a callback");
  check(eb_verify_purchase(c, "p1", EB_STORE_APPLE, "not base64", NULL, -1, on_purchase, &refused, NULL) ==
            EB_INVALID_ARGUMENT && strstr(eb_last_error(), "base64"), "purchase receipt that is not base64");
  check(eb_set_purchase_handler(NULL, on_purchase, NULL) == EB_INVALID_ARGUMENT, "purchase handler on a NULL client");
  eb_stats s;
  char buf_error[256];
  eb_get_stats(c, &s);
  check(s.tracked == 10, "refused calls queued nothing");

  int acked = 0;
  for (int i = 0; i < 2000 && !acked; ++i) {
    eb_poll(c);
    acked = all_acked(c);
    sleep_ms(5);
  }
  eb_get_stats(c, &s);
  check(acked && s.stored == 10 && s.rejected == 0, "ten events stored");
  check(s.connected == 1 && s.connection == EB_CONNECTED, "stats say connected");
  check(eb_connection_error(c, buf_error, sizeof buf_error) == 0, "no connection error while connected");

  /* Per-event options (a dedicated server's player, a replayed event's id and time), and the daemon's
   * rejection of what the binding does not check: transaction_num must be an integer. */
  static const unsigned char opt_fields[] = "\x81\xa8" "event_id" "\xa6" "c:opts";
  static const unsigned char bad_business[] = "\x84\xa8" "event_id" "\xa3" "a:b" "\xa6" "amount" "\x01" "\xa8" "currency"
                                              "\xa3" "USD" "\xaf" "transaction_num" "\xa1" "x";
  eb_event_options opts = {"c-opt-1", "player-3", 1, 1700000000123};
  check(eb_track_with(c, EB_DESIGN, opt_fields, sizeof opt_fields - 1, &opts) == EB_OK,
        "eb_track_with: the event's own id, player and time");
  eb_event_options bad_id = {"has space", NULL, 0, 0};
  check(eb_track_with(c, EB_DESIGN, opt_fields, sizeof opt_fields - 1, &bad_id) == EB_INVALID_ARGUMENT &&
            strstr(eb_last_error(), "EventOptions.id"), "eb_track_with refuses a bad id");
  check(eb_track(c, EB_BUSINESS, bad_business, sizeof bad_business - 1) == EB_OK, "a business event with a string transaction_num");
  acked = 0;
  for (int i = 0; i < 2000 && !acked; ++i) {
    eb_poll(c);
    acked = all_acked(c);
    sleep_ms(5);
  }
  eb_get_stats(c, &s);
  check(acked && s.stored == 11 && s.rejected == 1, "the daemon stores one and rejects the other");
  char rejection[256];
  check(eb_last_rejection(c, rejection, sizeof rejection) > 0 && strstr(rejection, "transaction_num"),
        "eb_last_rejection names the field");
  eb_session_options player = {"player-3", "203.0.113.7", 0, 0};
  check(eb_start_session_with(c, &player, on_session, NULL) == EB_OK, "eb_start_session_with another player");
  check(wait_flag(c, &session_ok, 10000), "the player's session reply");
  eb_session_options long_ip = {NULL, "1111111111111111111111111111111111111111111111", 0, 0};
  check(eb_end_session_with(c, &long_ip, NULL, NULL) == EB_INVALID_ARGUMENT && strstr(eb_last_error(), "user_ip"),
        "a 46-char user_ip is refused");

  check(eb_flush(c, on_flush, NULL) == EB_OK, "eb_flush");
  check(wait_flag(c, &flush_ok, 10000), "flush reply reaches the callback");
  char id[EB_PURCHASE_ID_SIZE] = "";
  check(eb_verify_purchase(c, "p-c-1", EB_STORE_APPLE, "cmVjZWlwdA==", NULL, 1.99, on_purchase, &refused, id) == EB_OK &&
            strcmp(id, "p-c-1") == 0, "eb_verify_purchase");
  check(wait_flag(c, &refused.count, 10000) && refused.count == 1 && !refused.items[0].ok &&
            strcmp(refused.items[0].error_code, "not_configured") == 0 && strcmp(refused.items[0].id, "p-c-1") == 0,
        "a daemon without staq: not_configured reaches the purchase callback");

  check(eb_subscribe_config(c, "difficulty", on_difficulty, NULL, NULL) == EB_OK, "eb_subscribe_config");
  check(wait_flag(c, &difficulty_calls, 10000) && difficulty_len == 5 && memcmp(difficulty_value, "\xa4hard", 5) == 0,
        "config callback gets the current value as msgpack");
  char buf[8];
  check(eb_config_string(c, "difficulty", "none", buf, sizeof buf) == 4 && strcmp(buf, "hard") == 0, "eb_config_string");
  check(eb_config_string(c, "difficulty", "none", buf, 3) == 4 && strcmp(buf, "ha") == 0, "eb_config_string truncates");
  check(eb_config_int(c, "max_lives", -1) == 5, "eb_config_int");
  check(eb_config_int(c, "missing", -1) == -1, "eb_config_int fallback");
  check(eb_config_double(c, "max_lives", 0) == 5.0, "eb_config_double");
  check(eb_config_bool(c, "missing", 1) == 1, "eb_config_bool fallback");

  eb_shutdown(c, 500);
  check(eb_track_design(c, "a:b", 0, 0) == EB_NOT_CONNECTED, "tracking after eb_shutdown: EB_NOT_CONNECTED");
  eb_client_free(c);
  eb_client_free(NULL);

  /* Purchases through staq: a verdict in the callback; the next run of the device hears it in its handler. */
  const char* receipt = argv[5];
  seen_purchases first = {0}, first_handler = {0};
  char first_id[EB_PURCHASE_ID_SIZE] = "";
  eb_client* buyer = eb_client_new();
  check(eb_client_set(buyer, "game_build", "3.1.0") == EB_OK && eb_client_set(buyer, "device_id", "c-abi-buyer") == EB_OK &&
            eb_client_set(buyer, "ingress_endpoint", argv[3]) == EB_OK &&
            eb_client_set(buyer, "configs_endpoint", argv[4]) == EB_OK &&
            eb_set_purchase_handler(buyer, on_purchase, &first_handler) == EB_OK && eb_connect(buyer) == EB_OK,
        "a client of the staq daemon, with a purchase handler");
  check(eb_verify_purchase(buyer, NULL, EB_STORE_APPLE, receipt, NULL, 0.99, on_purchase, &first, first_id) == EB_OK &&
            strlen(first_id) == 36, "eb_verify_purchase generates an id");
  check(wait_flag(buyer, &first.count, 15000) && first.count == 1 && first.items[0].ok && first.items[0].is_valid &&
            !first.items[0].is_duplicate && first.items[0].grantable && strcmp(first.items[0].store, "apple") == 0 &&
            strcmp(first.items[0].id, first_id) == 0, "the verdict reaches the callback: valid, grantable");
  eb_shutdown(buyer, 200);
  check(first.count == 1 && first_handler.count == 0, "callback once, and the handler never hears of our purchase");
  eb_client_free(buyer);

  seen_purchases later_handler = {0}, second = {0};
  eb_client* again = eb_client_new();
  check(eb_client_set(again, "game_build", "3.1.0") == EB_OK && eb_client_set(again, "device_id", "c-abi-buyer") == EB_OK &&
            eb_client_set(again, "ingress_endpoint", argv[3]) == EB_OK &&
            eb_client_set(again, "configs_endpoint", argv[4]) == EB_OK &&
            eb_set_purchase_handler(again, on_purchase, &later_handler) == EB_OK && eb_connect(again) == EB_OK,
        "the device's next run");
  check(wait_flag(again, &later_handler.count, 15000) && later_handler.count == 1 &&
            strcmp(later_handler.items[0].id, first_id) == 0 && later_handler.items[0].grantable &&
            later_handler.items[0].has_verified_at, "the earlier run's verdict reaches the handler");
  /* The same receipt again, under a new id: a replay. Its verdict republishes the topic. */
  check(eb_verify_purchase(again, "c-abi-replay", EB_STORE_APPLE, receipt, NULL, 0.99, on_purchase, &second, NULL) == EB_OK,
        "eb_verify_purchase of a spent receipt");
  check(wait_flag(again, &second.count, 15000) && second.items[0].ok && second.items[0].is_duplicate &&
            !second.items[0].grantable, "a replayed receipt: is_duplicate, not grantable");
  for (int i = 0; i < 100; ++i) {
    eb_poll(again);
    sleep_ms(10);
  }
  check(second.count == 1 && later_handler.count == 1, "after the republish: no callback and no handler call twice");
  check(eb_set_purchase_handler(again, NULL, NULL) == EB_OK, "the handler can be removed");
  eb_client_free(again);

  /* A provider's refusal reaches the handler and the log; a daemon that is not there, the connection handler. */
  heard ga_heard = {0}, dead_heard = {0};
  eb_client* ga = client_for("c-abi-ga", argv[6], argv[7]);
  check(ga != NULL && eb_set_refusal_handler(ga, on_refusal, &ga_heard) == EB_OK &&
            eb_set_log_handler(ga, on_log, &ga_heard) == EB_OK &&
            eb_set_connection_handler(ga, on_connection, &ga_heard) == EB_OK && eb_connect(ga) == EB_OK,
        "a client of the GameAnalytics daemon, with refusal, log and connection handlers");
  static const unsigned char ga_fields[] = "\x81\xa8" "event_id" "\xa8" "c:bad#id";
  eb_event_options ga_opts = {"c-ga-bad", NULL, 0, 0};
  check(eb_track_with(ga, EB_DESIGN, ga_fields, sizeof ga_fields - 1, &ga_opts) == EB_OK, "an event GameAnalytics refuses");
  check(wait_flag(ga, &ga_heard.refusals, 10000) && strcmp(ga_heard.event_id, "c-ga-bad") == 0 &&
            strcmp(ga_heard.provider, "gameanalytics") == 0 && strstr(ga_heard.rule, "bad#id"),
        "the refusal handler gets the event id, the provider and the rule");
  check(wait_flag(ga, &ga_heard.warnings, 1000) && strstr(ga_heard.warning, "gameanalytics refuses event c-ga-bad") &&
            strstr(ga_heard.warning, ga_heard.rule), "the log handler gets the warning with the rule");
  eb_get_stats(ga, &s);
  check(s.provider_refusals == 1 && s.stored == 1 && ga_heard.connected == 1, "stats count the refusal; connected once");
  eb_client_free(ga);

  eb_client* dead = client_for("c-abi-dead", argv[8], argv[8]);
  check(dead != NULL && eb_set_connection_handler(dead, on_connection, &dead_heard) == EB_OK &&
            eb_set_log_handler(dead, on_log, &dead_heard) == EB_OK && eb_connect(dead) == EB_OK, "a client of no daemon");
  check(wait_flag(dead, &dead_heard.unreachable, 10000), "the connection handler hears EB_UNREACHABLE");
  eb_get_stats(dead, &s);
  check(s.connection == EB_UNREACHABLE && eb_connection_error(dead, buf_error, sizeof buf_error) > 0 &&
            strstr(buf_error, "no daemon answers") && dead_heard.warnings == 1 && strstr(dead_heard.warning, argv[8]),
        "eb_connection_error and one log warning say no daemon answers");
  eb_client_free(dead);

  /* The bundled daemon's keys: a game id, the executable (LAUNCHER: a script that records its arguments, then runs
     the daemon) and more arguments after those the binding passes; the wrapper checks the command line. */
  char more[600];
  snprintf(more, sizeof more, "--data-dir\x1f%s\x1f--log-level\x1finfo", argv[12]);
  eb_client* launcher = client_for("c-abi-launch", argv[10], argv[11]);
  check(launcher != NULL && eb_client_set(launcher, "game", "c-abi-game") == EB_OK &&
            eb_client_set(launcher, "daemon_executable", argv[9]) == EB_OK &&
            eb_client_set(launcher, "daemon_arguments", more) == EB_OK &&
            eb_client_set(launcher, "daemon_probe_ms", "300") == EB_OK && eb_connect(launcher) == EB_OK,
        "a client of game c-abi-game that launches its daemon (game, daemon_executable, daemon_arguments)");
  check(eb_track_design(launcher, "c:launched", 0, 0) == EB_OK, "an event for the launched daemon");
  for (int waited = 0; waited < 30000 && !all_acked(launcher); waited += 10) {
    eb_poll(launcher);
    sleep_ms(10);
  }
  eb_get_stats(launcher, &s);
  check(all_acked(launcher) && s.stored == 1 && s.daemon_pid > 0 && s.connection == EB_CONNECTED,
        "the launched daemon of that game stored it");
  eb_client_free(launcher);

  heard missing_heard = {0};
  eb_client* missing = client_for("c-abi-missing", argv[8], argv[8]);
  check(missing != NULL && eb_client_set(missing, "daemon_executable", "/nonexistent/engine-bridge") == EB_OK &&
            eb_client_set(missing, "daemon_probe_ms", "100") == EB_OK &&
            eb_set_connection_handler(missing, on_connection, &missing_heard) == EB_OK && eb_connect(missing) == EB_OK,
        "a client whose daemon_executable names no file");
  check(wait_flag(missing, &missing_heard.launch_failed, 10000) && strstr(missing_heard.detail, "/nonexistent/engine-bridge"),
        "the connection handler hears EB_LAUNCH_FAILED, naming the executable");
  eb_client_free(missing);

  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
