/* The C ABI against a real daemon, from plain C99. Driven by tests/bindings/test_cpp.py, which starts a
 * daemon whose [configs] has difficulty = "hard" and max_lives = 5.
 *
 *   engine_bridge_c_test INGRESS CONFIGS
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
static int flush_ok, purchase_done, difficulty_calls;
static char purchase_code[64];
static unsigned char difficulty_value[16];
static size_t difficulty_len;

static void on_flush(void* user, const eb_reply* r) {
  (void)user;
  flush_ok = r->ok && strcmp(r->type, "flushed") == 0 && r->body_len > 0;
}

static void on_purchase(void* user, const eb_reply* r) {
  (void)user;
  purchase_done = !r->ok;
  snprintf(purchase_code, sizeof purchase_code, "%s", r->error_code);
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
  if (argc < 3) {
    fprintf(stderr, "usage: engine_bridge_c_test INGRESS CONFIGS\n");
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
  check(eb_verify_purchase(c, "p1", EB_STORE_APPLE, "r", NULL, -1, NULL, NULL) == EB_INVALID_ARGUMENT,
        "purchase without a callback");
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
  check(eb_verify_purchase(c, "p-c-1", EB_STORE_APPLE, "receipt", NULL, 1.99, on_purchase, NULL) == EB_OK, "eb_verify_purchase");
  check(wait_flag(c, &purchase_done, 10000) && strcmp(purchase_code, "not_configured") == 0,
        "purchase reply: not_configured");

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

  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
