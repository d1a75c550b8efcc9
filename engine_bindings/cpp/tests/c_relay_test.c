/* The C ABI straight to a relay over CURVE (the relay_* settings), for tests/bindings/test_cpp.py:
 *   engine_bridge_c_relay_test RELAY RELAY_KEY KEY_FILE DEVICE COUNT
 * tracks COUNT design events c-relay:0 ... and exits 0 once the relay acknowledged them all (60 s at most). */
#include <engine_bridge/engine_bridge.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char** argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: engine_bridge_c_relay_test RELAY RELAY_KEY KEY_FILE DEVICE COUNT\n");
    return 64;
  }
  eb_client* c = eb_client_new();
  const int count = atoi(argv[5]);
  if (eb_client_set(c, "game_build", "1.0.0") != EB_OK || eb_client_set(c, "device_id", argv[4]) != EB_OK ||
      eb_client_set(c, "platform", "ios") != EB_OK || eb_client_set(c, "relay_endpoint", argv[1]) != EB_OK ||
      eb_client_set(c, "relay_public_key", argv[2]) != EB_OK || eb_client_set(c, "relay_key_file", argv[3]) != EB_OK ||
      eb_connect(c) != EB_OK) {
    printf("CONNECT_FAILED %s\n", eb_last_error());
    return 3;
  }
  for (int i = 0; i < count; ++i) {
    char id[32];
    snprintf(id, sizeof id, "c-relay:%d", i);
    eb_track_design(c, id, 0, 0);
  }
  eb_stats st;
  const time_t deadline = time(NULL) + 60;
  do {
    eb_poll(c);
    eb_get_stats(c, &st);
    struct timespec frame = {0, 10 * 1000 * 1000};
    nanosleep(&frame, NULL);
  } while (st.acknowledged < (uint64_t)count && time(NULL) < deadline);
  printf("ACKED %llu stored %llu connected %d\n", (unsigned long long)st.acknowledged, (unsigned long long)st.stored,
         st.connected);
  eb_client_free(c);
  return st.stored == (uint64_t)count ? 0 : 1;
}
