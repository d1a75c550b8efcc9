// Built with -fno-exceptions against the installed package: tracks one event and waits for its ack.
//
//   consumer INGRESS CONFIGS
#include <engine_bridge/engine_bridge.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#error "this consumer must build with -fno-exceptions"
#endif

namespace eb = engine_bridge;

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  if (std::strcmp(eb::kBindingVersion, PACKAGE_VERSION) != 0) {
    std::printf("header %s, package %s\n", eb::kBindingVersion, PACKAGE_VERSION);
    return 3;
  }
  eb::GameInfo game;
  game.game_build = "1.0.0";
  game.device_id = "consumer-device";
  eb::Settings settings;
  settings.ingress_endpoint = argv[1];
  settings.configs_endpoint = argv[2];
  eb::Client bridge;
  if (eb::Status s = bridge.Connect(game, settings); !s) {
    std::printf("connect: %s\n", s.message().c_str());
    return 1;
  }
  // An error comes back as a Status, never as an exception (there are none in this program).
  const eb::Status refused = bridge.TrackDesign("a:b:c:d:e:f");
  bridge.TrackDesign("consumer:built", 1.0);
  for (int i = 0; i < 500 && bridge.GetStats().acknowledged < 1; ++i) {
    bridge.Poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const eb::Stats stats = bridge.GetStats();
  std::printf("refused: %s\nacknowledged %llu\n", refused.message().c_str(),
              static_cast<unsigned long long>(stats.acknowledged));
  bridge.Shutdown();
  return stats.acknowledged == 1 && refused.code() == eb::ErrorCode::InvalidArgument ? 0 : 1;
}
