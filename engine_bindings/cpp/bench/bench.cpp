// What a Track call costs the game's thread, and how many events per second reach the daemon.
// Run by benchmarks/bench_cpp.py against a real daemon.
//
//   engine_bridge_bench INGRESS CONFIGS [CALLS] [EVENTS]
//
// Prints "key=value" lines: the per-call figures include one steady_clock read (about 20 ns).
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

bool WaitAcked(const eb::Client& c, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    const eb::Stats s = c.GetStats();
    if (s.queued == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

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
  if (argc < 3) {
    std::fprintf(stderr, "usage: engine_bridge_bench INGRESS CONFIGS [CALLS] [EVENTS]\n");
    return 2;
  }
  const int calls = argc > 3 ? std::atoi(argv[3]) : 100000;
  const int events = argc > 4 ? std::atoi(argv[4]) : 200000;

  eb::GameInfo game;
  game.game_build = "1.0.0";
  game.device_id = "bench-device";
  eb::Settings settings;
  settings.ingress_endpoint = argv[1];
  settings.configs_endpoint = argv[2];
  settings.queue_capacity = static_cast<std::size_t>(std::max(calls, events)) * 2;
  settings.shutdown_grace = std::chrono::milliseconds(0);

  eb::Client client;
  if (eb::Status s = client.Connect(game, settings); !s) {
    std::fprintf(stderr, "connect: %s\n", s.message().c_str());
    return 1;
  }
  const auto connect_deadline = Clock::now() + std::chrono::seconds(10);
  while (!client.GetStats().connected && Clock::now() < connect_deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!client.GetStats().connected) {
    std::fprintf(stderr, "no welcome from the daemon\n");
    return 1;
  }

  // 1. The game thread's cost, while the background thread ships the events to the daemon.
  for (int i = 0; i < 5000; ++i) client.TrackDesign("warm:up", 1.0);  // first allocations, thread-local RNG
  TimeCalls("track_design", calls, [&](int) { client.TrackDesign("ui:click:play", 1.5); });
  TimeCalls("track_custom", calls, [&](int i) { client.TrackCustom("bench", {{"n", i}, {"level", "world01"}}); });
  if (!WaitAcked(client, std::chrono::seconds(120))) {
    std::fprintf(stderr, "the daemon did not acknowledge the timing run\n");
    return 1;
  }

  // 2. Sustained rate into the daemon: from the first Track to the last ack.
  const eb::Stats before = client.GetStats();
  const auto t0 = Clock::now();
  for (int i = 0; i < events; ++i) client.TrackCustom("throughput", {{"n", i}});
  const double enqueue_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!WaitAcked(client, std::chrono::seconds(300))) {
    std::fprintf(stderr, "the daemon did not acknowledge the throughput run\n");
    return 1;
  }
  const double total_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const eb::Stats after = client.GetStats();
  std::printf("throughput_events=%d\nthroughput_enqueue_s=%.3f\nthroughput_total_s=%.3f\nthroughput_events_per_s=%.0f\n",
              events, enqueue_s, total_s, events / total_s);
  std::printf("stored=%llu\ndropped=%llu\nrejected=%llu\n", static_cast<unsigned long long>(after.stored - before.stored),
              static_cast<unsigned long long>(after.dropped), static_cast<unsigned long long>(after.rejected));
  client.Shutdown();
  return after.dropped == 0 && after.rejected == 0 ? 0 : 1;
}
