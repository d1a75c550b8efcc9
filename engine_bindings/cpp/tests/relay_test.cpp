// A game on a platform without a local daemon, straight to a relay over CURVE (Settings::relay), for
// tests/bindings/test_cpp.py.
//
//   engine_bridge_relay_test send    RELAY CONFIGS|- RELAY_KEY KEY_FILE DEVICE TAG COUNT [CONFIG_KEY VALUE]
//     a session with COUNT design events TAG:0 ... (and, with CONFIG_KEY, until the relay's config for this
//     device gives it VALUE), then flush; exit 0 once every event is acknowledged and the flush answered
//   engine_bridge_relay_test refused RELAY CONFIGS|- RELAY_KEY KEY_FILE DEVICE TAG COUNT
//     tracks COUNT events and waits until the client says the relay refuses it; exit 0 if it then is not
//     connected and still holds every event
//   engine_bridge_relay_test refused-hold ...  the same, playing on after REFUSED until a line on standard input
//   engine_bridge_relay_test purchase RELAY CONFIGS RELAY_KEY KEY_FILE DEVICE RECEIPT COUNT
//     COUNT Apple purchases DEVICE-buy-0 ... of the one base64 RECEIPT, each sent once the one before has its
//     verdict; exit 0 once every one has one (VERDICT <id> ok=.. valid=.. duplicate=.. after_ms=.. <reason>)
// It prints what it sees: STATE <state> (each change), CONFIG <key> = <value>, ACKED, FLUSHED, REFUSED.
#include <engine_bridge/engine_bridge.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

namespace eb = engine_bridge;

namespace {

const char* StateName(eb::ConnectionState s) {
  switch (s) {
    case eb::ConnectionState::Connecting: return "connecting";
    case eb::ConnectionState::Connected: return "connected";
    case eb::ConnectionState::Unreachable: return "unreachable";
    case eb::ConnectionState::WrongPeer: return "wrong_peer";
    case eb::ConnectionState::LaunchFailed: return "launch_failed";
  }
  return "?";
}

// Polls (a game's frames) until `done` or `seconds` pass; returns `done()`.
template <typename Done>
bool PollUntil(eb::Client& client, Done done, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    client.Poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  client.Poll();
  return done();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9 && argc != 11) {
    std::fprintf(stderr, "usage: %s send|refused|refused-hold|purchase RELAY CONFIGS|- RELAY_KEY KEY_FILE DEVICE TAG COUNT [KEY VALUE]\n",
                 argv[0]);
    return 64;
  }
  const std::string mode = argv[1], tag = argv[7];
  const int count = std::atoi(argv[8]);
  const std::string config_key = argc == 11 ? argv[9] : "", config_value = argc == 11 ? argv[10] : "";

  eb::GameInfo game;
  game.game_build = "1.0.0";
  game.device_id = argv[6];
  game.user_id = std::string(argv[6]) + "-player";
  game.engine = "custom";
  game.platform = "android";
  game.os_version = "android 14";

  eb::Settings settings;
  settings.relay.endpoint = argv[2];
  if (std::string(argv[3]) != "-") settings.relay.configs_endpoint = argv[3];
  settings.relay.public_key = argv[4];
  settings.relay.key_file = argv[5];

  eb::Client client;
  std::atomic<eb::ConnectionState> state{eb::ConnectionState::Connecting};
  client.SetConnectionHandler([&state](eb::ConnectionState s, std::string_view detail) {
    state = s;
    std::printf("STATE %s %.*s\n", StateName(s), static_cast<int>(detail.size()), detail.data());
    std::fflush(stdout);
  });
  std::string seen_value;
  if (!config_key.empty()) {
    client.SubscribeConfig(config_key, [&seen_value](std::string_view key, const eb::Value& value) {
      const std::string* s = value.AsString();
      seen_value = s ? *s : "(not a string)";
      std::printf("CONFIG %.*s = %s\n", static_cast<int>(key.size()), key.data(), seen_value.c_str());
      std::fflush(stdout);
    });
  }
  if (eb::Status s = client.Connect(game, settings); !s) {
    std::printf("CONNECT_FAILED %s\n", s.message().c_str());
    return 3;
  }

  if (mode == "purchase") {  // tag is the receipt
    int verdicts = 0;
    for (int i = 0; i < count; ++i) {
      eb::Purchase purchase;
      purchase.id = std::string(argv[6]) + "-buy-" + std::to_string(i);
      purchase.store = eb::PurchaseStore::Apple;
      purchase.receipt = tag;
      purchase.price_usd = 0.99;
      bool done = false;
      const auto sent = std::chrono::steady_clock::now();
      if (eb::Status s = client.VerifyPurchase(purchase, [&](const eb::PurchaseResult& r) {
            const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - sent);
            std::printf("VERDICT %s ok=%d valid=%d duplicate=%d after_ms=%lld %s%s\n", r.id.c_str(), r.ok ? 1 : 0,
                        r.is_valid ? 1 : 0, r.is_duplicate ? 1 : 0, static_cast<long long>(took.count()),
                        r.error_code.c_str(), r.ok ? r.reason.c_str() : (": " + r.message).c_str());
            std::fflush(stdout);
            done = true;
            verdicts += r.ok ? 1 : 0;
          }); !s) {
        std::printf("PURCHASE_REFUSED %s\n", s.message().c_str());
        return 1;
      }
      if (!PollUntil(client, [&] { return done; }, 90)) {
        std::printf("NO VERDICT %s %s\n", purchase.id.c_str(), client.GetStats().last_error.c_str());
        return 1;
      }
    }
    client.Shutdown();
    std::fflush(stdout);
    return verdicts == count ? 0 : 1;
  }

  if (mode == "refused" || mode == "refused-hold") {
    for (int i = 0; i < count; ++i) client.TrackDesign(tag + ":" + std::to_string(i));
    const bool refused = PollUntil(client, [&] { return state == eb::ConnectionState::WrongPeer; }, 30);
    eb::Stats st = client.GetStats();
    std::printf("REFUSED %d connected=%d queued=%llu acknowledged=%llu\n", refused ? 1 : 0, st.connected ? 1 : 0,
                static_cast<unsigned long long>(st.queued), static_cast<unsigned long long>(st.acknowledged));
    std::fflush(stdout);
    if (mode == "refused-hold") {  // a game that goes on playing, refused, until a line on standard input
      std::atomic<bool> told{false};
      std::thread([&told] {
        std::string line;
        std::getline(std::cin, line);
        told = true;
      }).detach();
      PollUntil(client, [&] { return told.load(); }, 120);
      st = client.GetStats();
      std::printf("HELD connected=%d queued=%llu acknowledged=%llu\n", st.connected ? 1 : 0,
                  static_cast<unsigned long long>(st.queued), static_cast<unsigned long long>(st.acknowledged));
    }
    client.Shutdown(std::chrono::milliseconds(0));
    return refused && !st.connected && st.queued == static_cast<std::uint64_t>(count) && st.acknowledged == 0 ? 0 : 1;
  }

  bool started = false;
  client.StartSession([&started](const eb::Reply& r) {
    started = r.ok;
    std::printf("SESSION %s\n", r.ok ? "started" : r.message.c_str());
  });
  for (int i = 0; i < count; ++i) client.TrackDesign(tag + ":" + std::to_string(i), static_cast<double>(i));
  const bool acked = PollUntil(client, [&] {
    const eb::Stats st = client.GetStats();
    return started && st.acknowledged == st.tracked;
  }, 60);
  eb::Stats st = client.GetStats();
  std::printf("ACKED %llu stored %llu of %llu\n", static_cast<unsigned long long>(st.acknowledged),
              static_cast<unsigned long long>(st.stored), static_cast<unsigned long long>(st.tracked));
  const bool configured = config_key.empty() || PollUntil(client, [&] { return seen_value == config_value; }, 60);
  bool flushed = false;
  client.EndSession();
  client.Flush([&flushed](const eb::Reply& r) {
    flushed = r.ok;
    std::printf("FLUSHED %s\n", r.ok ? "ok" : r.message.c_str());
  });
  PollUntil(client, [&] { return flushed; }, 30);
  st = client.GetStats();
  client.Shutdown();
  std::fflush(stdout);
  return acked && configured && flushed && st.stored == static_cast<std::uint64_t>(count) ? 0 : 1;
}
