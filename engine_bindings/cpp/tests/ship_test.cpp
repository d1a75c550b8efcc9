// A game shipped with the bundled daemon, as tests/bindings/shipping.py drives every binding's (the Unity and
// Godot ones do the same steps): launch it from a path relative to this program, track, kill it and have it
// relaunched, then either play on until killed or quit; or meet a missing daemon or another game's daemon.
//
//   engine_bridge_ship_test play|quit GAME DAEMON COUNT       DAEMON relative to this program's folder
//   engine_bridge_ship_test missing GAME DAEMON              DAEMON missing, or not executable
//   engine_bridge_ship_test wrong GAME INGRESS CONFIGS COUNT  another game's daemon, until this game's takes over
//   engine_bridge_ship_test command GAME INGRESS CONFIGS COUNT ARGV...   the game's own command (daemon.command)
#include <engine_bridge/engine_bridge.hpp>

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>

namespace eb = engine_bridge;
using namespace std::chrono_literals;

namespace {

bool WaitFor(eb::Client& client, const std::function<bool(const eb::Stats&)>& done, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    client.Poll();
    if (done(client.GetStats())) return true;
    std::this_thread::sleep_for(16ms);  // a frame
  }
  return false;
}

void Track(eb::Client& client, int from, int count) {
  for (int n = from; n < from + count; ++n) client.TrackCustom("ship", {{"n", n}});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return 2;
  const std::string mode = argv[1];
  eb::GameInfo game;
  game.game_build = "1.0.0";
  game.device_id = "ship-cpp-device";
  eb::Settings settings;
  settings.game = argv[2];
  if (mode == "wrong" || mode == "command") {
    settings.ingress_endpoint = argv[3];
    settings.configs_endpoint = argv[4];
    if (mode == "command") settings.daemon.command.assign(argv + 6, argv + argc);
    settings.daemon.probe = 300ms;
  } else {
    settings.daemon.executable = argv[3];
    settings.daemon.probe = 300ms;
  }
  eb::Client client;
  if (eb::Status s = client.Connect(game, settings); !s) {
    std::printf("CONNECT FAILED %s\n", s.message().c_str());
    return 1;
  }
  if (mode == "missing") {
    const bool failed = WaitFor(client, [](const eb::Stats& s) { return s.connection == eb::ConnectionState::LaunchFailed; }, 30s);
    std::printf("%s %s\n", failed ? "LAUNCH FAILED" : "NO FAILURE", client.GetStats().last_error.c_str());
    return failed ? 0 : 1;
  }
  if (mode == "wrong") {
    const int count = std::stoi(argv[5]);
    Track(client, 0, count);
    const bool refused = WaitFor(client, [](const eb::Stats& s) { return s.connection == eb::ConnectionState::WrongPeer; }, 30s);
    eb::Stats stats = client.GetStats();
    std::printf("%s %s\nSTORED %llu\n", refused ? "REFUSED" : "NOT REFUSED", stats.last_error.c_str(),
                static_cast<unsigned long long>(stats.stored));
    std::fflush(stdout);
    if (!refused) return 1;
    // The events stay queued; the test stops the other game's daemon and starts this game's own on the same
    // endpoints: asked again every few seconds, it gets them.
    const bool taken = WaitFor(client, [&](const eb::Stats& s) { return s.stored == static_cast<std::uint64_t>(count); }, 60s);
    stats = client.GetStats();
    if (taken) {
      std::printf("TAKEN OVER STORED %llu\n", static_cast<unsigned long long>(stats.stored));
    } else {
      std::printf("NOT TAKEN OVER %s stored %llu\n", stats.last_error.c_str(), static_cast<unsigned long long>(stats.stored));
    }
    std::fflush(stdout);
    client.Shutdown();
    return taken ? 0 : 1;
  }
  const int count = std::stoi(argv[mode == "command" ? 5 : 4]);
  Track(client, 0, count);
  if (!WaitFor(client, [&](const eb::Stats& s) { return s.stored == static_cast<std::uint64_t>(count); }, 60s)) return 1;
  const std::int64_t first = client.GetStats().daemon_pid;
  std::printf("ACKED %d DAEMON %lld\n", count, static_cast<long long>(first));
  std::fflush(stdout);
  if (mode == "command") {  // a daemon run without --parent-pipe: the game is killed under it
    std::printf("PLAYING\n");
    std::fflush(stdout);
    for (;;) {
      client.Poll();
      std::this_thread::sleep_for(16ms);
    }
  }
  if (first <= 0) {  // kill(0) would kill the whole process group: the test run itself
    std::printf("NO DAEMON PID\n");
    return 1;
  }
  ::kill(static_cast<pid_t>(first), SIGKILL);  // the daemon dies under the game: it is launched again
  Track(client, count, count);
  if (!WaitFor(client, [&](const eb::Stats& s) { return s.stored == static_cast<std::uint64_t>(2 * count) &&
                                                        s.daemon_pid != first && s.daemon_pid != 0; }, 60s)) {
    std::printf("NOT RELAUNCHED %s\n", client.GetStats().last_error.c_str());
    return 1;
  }
  std::printf("RELAUNCHED %d DAEMON %lld\n", 2 * count, static_cast<long long>(client.GetStats().daemon_pid));
  std::fflush(stdout);
  if (mode == "quit") {
    client.Shutdown();
    std::printf("QUIT\n");
    return 0;
  }
  std::printf("PLAYING\n");
  std::fflush(stdout);
  for (;;) {  // until the test kills the game
    client.Poll();
    std::this_thread::sleep_for(16ms);
  }
}
