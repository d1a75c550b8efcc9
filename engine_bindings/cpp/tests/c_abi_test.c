/* The C ABI against real daemons, from plain C99. Driven by tests/bindings/test_cpp.py, which starts a
 * daemon whose [configs] has difficulty = "hard" and max_lives = 5 and no providers, and a second one
 * whose staq provider is a local staq sandbox that calls RECEIPT (base64) valid.
 *
 *   engine_bridge_c_test INGRESS CONFIGS STAQ_INGRESS STAQ_CONFIGS RECEIPT
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
  if (argc < 6) {
    fprintf(stderr, "usage: engine_bridge_c_test INGRESS CONFIGS STAQ_INGRESS STAQ_CONFIGS RECEIPT\n");
    return 2;
  }
  check(strcmp(eb_binding_version(), "0.1.0") == 0, "eb_binding_version");
  eb_client* c = eb_client_new();
  check(c != NULL, "eb_client_new");
  check(eb_client_set(c, "no_such_setting", "1") == EB_INVALID_ARGUMENT && strstr(eb_last_error(), "no_such_setting"),
        "unknown setting is refused by name");
  check(eb_client_set(c, "queue_capacity", "lots") == EB_INVALID_ARGUMENT, "non-numeric queue_capacity is refused");
  check(eb_client_set(c, "game_build", NULL) == EB_INVALID_ARGUMENT, "NULL setting value is refused");
  check(eb_track_design(c, "ui:play", 0, 0) == EB_NOT_CONNECTED, "tracking before eb_connect: EB_NOT_CONNECTED");
  check(eb_connect(c) == EB_INVALID_ARGUMENT && strstr(eb_last_error(), "game_build"), "eb_connect without game_build");

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
  check(eb_track(c, (eb_category)7, generic, sizeof generic) == EB_INVALID_ARGUMENT, "category out of range");
  check(eb_track_design(NULL, "a:b", 0, 0) == EB_INVALID_ARGUMENT && strstr(eb_last_error(), "client is NULL"),
        "NULL client");
  seen_purchases refused = {0};
  check(eb_verify_purchase(c, "p1", EB_STORE_APPLE, "cg==", NULL, -1, NULL, NULL, NULL) == EB_INVALID_ARGUMENT &&
            strstr(eb_last_error(), "on_result"), "purchase without a callback");
  check(eb_verify_purchase(c, "p1", EB_STORE_APPLE, "not base64", NULL, -1, on_purchase, &refused, NULL) ==
            EB_INVALID_ARGUMENT && strstr(eb_last_error(), "base64"), "purchase receipt that is not base64");
  check(eb_set_purchase_handler(NULL, on_purchase, NULL) == EB_INVALID_ARGUMENT, "purchase handler on a NULL client");
  eb_stats s;
  eb_get_stats(c, &s);
  check(s.tracked == 8, "refused calls queued nothing");

  int acked = 0;
  for (int i = 0; i < 2000 && !acked; ++i) {
    eb_poll(c);
    acked = all_acked(c);
    sleep_ms(5);
  }
  eb_get_stats(c, &s);
  check(acked && s.stored == 8 && s.rejected == 0, "eight events stored");
  check(s.connected == 1, "stats say connected");

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

  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
