/* Linked to the installed shared C ABI: its version, and a call that fails cleanly. */
#include <engine_bridge/engine_bridge.h>

#include <stdio.h>

int main(void) {
  eb_client* c = eb_client_new();
  const eb_status s = eb_connect(c); /* no game_build: refused, with a message */
  printf("%s %d %s\n", eb_binding_version(), (int)s, eb_last_error());
  eb_client_free(c);
  return s == EB_INVALID_ARGUMENT ? 0 : 1;
}
