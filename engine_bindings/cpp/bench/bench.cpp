// What a Track call costs the game's thread, and how many events per second reach the daemon.
// Run by benchmarks/bench_cpp.py against a real daemon (a fresh one for each mode).
//
//   engine_bridge_bench track INGRESS CONFIGS CALLS        per-call cost of TrackDesign and TrackCustom
//   engine_bridge_bench throughput INGRESS CONFIGS EVENTS  first Track to last ack, events per second
//
// Prints "key=value" lines. Per-call figures include one steady_clock read (about 20 ns).
#include <engine_bridge/engine_bridge.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace eb = engine_bridge;
using Clock = std::chrono::steady_clock;

namespace {

bool WaitFor(const eb::Client& c, bool (*done)(const eb::Stats&), std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done(c.GetStats())) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

bool Drained(const eb::Stats& s) { return s.queued == 0; }
bool Connected(const eb::Stats& s) { return s.connected; }

// Times each call separately; prints median, p99 and max in ns.
template <typename Call>
void TimeCalls(const char* name, int calls, Call call) {
  std::vector<double> ns(static_cast<std::size_t>(calls));
  for (int i = 0; i < calls; ++i) {
    const auto t0 = Clock::now();
    call(i);
    ns[static_cast<std::size_t>(i)] = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  }
  std::sort(ns.begin(), ns.end());
  std::printf("%s_ns_median=%.0f\n%s_ns_p99=%.0f\n%s_ns_max=%.0f\n", name, ns[ns.size() / 2], name,
              ns[ns.size() * 99 / 100], name, ns.back());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: engine_bridge_bench track|throughput INGRESS CONFIGS COUNT\n");
    return 2;
  }
  const std::string mode = argv[1];
  const int count = std::atoi(argv[4]);
  if ((mode != "track" && mode != "throughput") || count <= 0) {
    std::fprintf(stderr, "mode must be track or throughput, COUNT a positive number\n");
    return 2;
  }

  eb::GameInfo game;
  game.game_build = "1.0.0";
  game.device_id = "bench-device";
  eb::Settings settings;
  settings.ingress_endpoint = argv[2];
  settings.configs_endpoint = argv[3];
  settings.queue_capacity = static_cast<std::size_t>(count) * 3;  // nothing may be dropped
  eb::Client client;
  if (eb::Status s = client.Connect(game, settings); !s) {
    std::fprintf(stderr, "connect: %s\n", s.message().c_str());
    return 1;
  }
  if (!WaitFor(client, Connected, std::chrono::seconds(10))) {
    std::fprintf(stderr, "no welcome from the daemon\n");
    return 1;
  }

  const eb::Stats before = client.GetStats();
  const auto t0 = Clock::now();
  if (mode == "track") {
    // The game thread's cost while the background thread ships the events to the daemon.
    for (int i = 0; i < 5000; ++i) client.TrackDesign("warm:up", 1.0);  // first allocations, thread-local RNG
    TimeCalls("track_design", count, [&](int) { client.TrackDesign("ui:click:play", 1.5); });
    TimeCalls("track_custom", count, [&](int i) { client.TrackCustom("bench", {{"n", i}, {"level", "world01"}}); });
  } else {
    for (int i = 0; i < count; ++i) client.TrackCustom("throughput", {{"n", i}});
    std::printf("enqueue_s=%.3f\n", std::chrono::duration<double>(Clock::now() - t0).count());
  }
  if (!WaitFor(client, Drained, std::chrono::seconds(300))) {
    std::fprintf(stderr, "the daemon did not acknowledge everything\n");
    return 1;
  }
  const double total_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const eb::Stats after = client.GetStats();
  const std::uint64_t stored = after.stored - before.stored;
  std::printf("events=%llu\nseconds=%.3f\nevents_per_s=%.0f\ndropped=%llu\nrejected=%llu\n",
              static_cast<unsigned long long>(stored), total_s, static_cast<double>(stored) / total_s,
              static_cast<unsigned long long>(after.dropped), static_cast<unsigned long long>(after.rejected));
  client.Shutdown();
  return after.dropped == 0 && after.rejected == 0 ? 0 : 1;
}
