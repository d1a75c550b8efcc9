// A game loop in miniature: connect, subscribe to a config, play a session that sends one event of each
// category, then quit cleanly (end the session, flush, shut down).
//
//   engine_bridge_sample [INGRESS] [CONFIGS]     defaults: tcp://127.0.0.1:5555 tcp://127.0.0.1:5556
#include <engine_bridge/engine_bridge.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

namespace eb = engine_bridge;

int main(int argc, char** argv) {
  eb::GameInfo game;
  game.game_build = "1.0.0";
  game.device_id = "sample-device";
  game.engine = "custom";
  game.platform = "linux";

  eb::Settings settings;
  if (argc > 1) settings.ingress_endpoint = argv[1];
  if (argc > 2) settings.configs_endpoint = argv[2];

  eb::Client bridge;
  if (eb::Status s = bridge.Connect(game, settings); !s) {
    std::fprintf(stderr, "connect: %s\n", s.message().c_str());
    return 1;
  }

  // Runs in Poll(): once with the current value, then at every change.
  bridge.SubscribeConfig("difficulty", [](std::string_view key, const eb::Value& value) {
    const std::string* s = value.AsString();
    std::printf("config %.*s = %s\n", static_cast<int>(key.size()), key.data(), s ? s->c_str() : "(not a string)");
  });

  bridge.StartSession([](const eb::Reply& r) {
    const eb::Value* num = r.body.Find("session_num");
    if (r.ok && num) std::printf("session %lld started\n", static_cast<long long>(num->AsInt().value_or(0)));
  });
  bridge.TrackDesign("ui:click:play", 1.0);
  bridge.TrackProgression(eb::ProgressionStatus::Start, "world01", "level01");
  bridge.TrackResource(eb::ResourceFlow::Source, "gold", 50, "reward", "daily");
  bridge.TrackBusiness("USD", 99, "gems", "pack_small");
  bridge.TrackAd(eb::AdAction::Show, eb::AdType::RewardedVideo, "admob", "end_of_level", 30000);
  bridge.TrackError(eb::ErrorSeverity::Warning, "texture streaming fell behind");
  bridge.TrackCustom("tutorial_skipped", {{"step", 3}, {"skipped", true}});
  bridge.TrackProgression(eb::ProgressionStatus::Complete, "world01", "level01", {}, 1200, 1);
  // A mistake is reported at the call site and nothing is sent.
  if (eb::Status s = bridge.TrackResource(eb::ResourceFlow::Sink, "gold", 0.0 / 0.0, "shop", "sword"); !s) {
    std::printf("refused: %s\n", s.message().c_str());
  }

  // The game's frames: Poll() runs the callbacks the background thread prepared.
  const auto frame = std::chrono::milliseconds(16);
  for (int i = 0; i < 300 && bridge.GetStats().acknowledged < bridge.GetStats().tracked; ++i) {
    bridge.Poll();
    std::this_thread::sleep_for(frame);
  }

  bool flushed = false;
  bridge.EndSession();
  bridge.Flush([&flushed](const eb::Reply& r) {
    flushed = true;
    std::printf("flush: %s\n", r.ok ? "done" : r.message.c_str());
  });
  for (int i = 0; i < 60 && !flushed; ++i) {
    bridge.Poll();
    std::this_thread::sleep_for(frame);
  }

  const eb::Stats stats = bridge.GetStats();
  std::printf("tracked %llu, stored %llu, acknowledged %llu\n", static_cast<unsigned long long>(stats.tracked),
              static_cast<unsigned long long>(stats.stored), static_cast<unsigned long long>(stats.acknowledged));
  bridge.Shutdown();
  return stats.acknowledged == stats.tracked ? 0 : 2;
}
