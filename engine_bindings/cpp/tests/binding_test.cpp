// The C++ binding against real daemons. Driven by tests/bindings/test_cpp.py, which starts three daemons (one
// without providers, one whose staq provider is a local staq sandbox, one whose GameAnalytics provider is
// the local GameAnalytics sandbox), keeps the places of two more (LATE, started on request, and LAUNCH, which
// this program launches), runs a program that is not engine-bridge on WRONG, and answers this program's
// requests: a line "@@ <command>" on stdout, then one reply line on stdin. Commands for the first daemon:
// freeze (SIGSTOP), thaw (SIGCONT), kill (SIGKILL; the reply carries the number of `stream` events in the
// store), start, config <toml lines separated by ';'>, count <device_id> (its events in the store). For the
// staq side: receipt <base64> valid|invalid (the sandbox's verdict on it), staq_down (every purchase
// verification fails with 503), staq_up (the sandbox answers again; the reply comes once the daemon has
// recorded every verdict), staq_daemon_restart. late_start starts the LATE daemon; wrong_connections
// answers how many connections the program on WRONG has accepted.
//
//   engine_bridge_test INGRESS CONFIGS STAQ_INGRESS STAQ_CONFIGS GA_INGRESS GA_CONFIGS LATE_INGRESS LATE_CONFIGS
//                      WRONG LAUNCH_INGRESS LAUNCH_CONFIGS LAUNCH_LOG DAEMON_ARGV...
//
// Prints one line per check and ends with "N passed, M failed".
#include <engine_bridge/engine_bridge.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>

namespace eb = engine_bridge;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

int g_passed = 0, g_failed = 0;

void Check(bool ok, const std::string& name, const std::string& detail = "") {
  (ok ? g_passed : g_failed)++;
  std::cout << (ok ? "PASS " : "FAIL ") << name << (ok || detail.empty() ? "" : ": " + detail) << std::endl;
}

// An argument error that names what was wrong, and nothing queued.
void CheckInvalid(eb::Client& c, const eb::Status& s, const std::string& name, const std::string& expect_in_message) {
  const bool ok = s.code() == eb::ErrorCode::InvalidArgument && s.message().find(expect_in_message) != std::string::npos;
  Check(ok, "bad argument: " + name, "code " + std::to_string(static_cast<int>(s.code())) + ", message: " + s.message());
  (void)c;
}

// Asks the wrapper to do something to the daemon; returns its reply line.
std::string Ask(const std::string& command) {
  std::cout << "@@ " << command << std::endl;
  std::string reply;
  std::getline(std::cin, reply);
  return reply;
}

// Polls the client (so callbacks run) until `done` or the timeout.
template <typename Pred>
bool WaitFor(std::vector<eb::Client*> clients, Pred done, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    for (eb::Client* c : clients) c->Poll();
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  for (eb::Client* c : clients) c->Poll();
  return done();
}

// Nothing left to acknowledge (events dropped by a full queue are no longer waiting).
bool AllAcked(const eb::Client& c) {
  const eb::Stats s = c.GetStats();
  return s.queued == 0 && s.in_flight == 0;
}

std::string Num(std::uint64_t n) { return std::to_string(n); }

// What a client told the game: its log lines, connection states and provider refusals, and whether any came
// on another thread than the one calling Poll.
struct Heard {
  std::thread::id main_thread = std::this_thread::get_id();
  std::vector<std::pair<eb::LogLevel, std::string>> log;
  std::vector<eb::ConnectionState> states;
  std::vector<eb::ProviderRefusal> refusals;
  bool other_thread = false;

  explicit Heard(eb::Client& c) {
    c.SetLogHandler([this](eb::LogLevel level, std::string_view line) {
      Note();
      log.emplace_back(level, std::string(line));
    });
    c.SetConnectionHandler([this](eb::ConnectionState state, std::string_view) {
      Note();
      states.push_back(state);
    });
    c.SetProviderRefusalHandler([this](const eb::ProviderRefusal& r) {
      Note();
      refusals.push_back(r);
    });
  }
  void Note() { other_thread = other_thread || std::this_thread::get_id() != main_thread; }
  // Log lines of `level` that contain every one of `parts`.
  std::size_t Lines(eb::LogLevel level, std::initializer_list<std::string> parts) const {
    return static_cast<std::size_t>(std::count_if(log.begin(), log.end(), [&](const auto& entry) {
      if (entry.first != level) return false;
      for (const std::string& p : parts) {
        if (entry.second.find(p) == std::string::npos) return false;
      }
      return true;
    }));
  }
  bool Saw(eb::ConnectionState state) const { return std::find(states.begin(), states.end(), state) != states.end(); }
  std::string Describe() const {
    std::string out;
    for (const auto& [level, line] : log) out += "\n  [" + std::to_string(static_cast<int>(level)) + "] " + line;
    return out.empty() ? "no log lines" : out;
  }
};

eb::GameInfo Game(const std::string& device_id) {
  eb::GameInfo g;
  g.game_build = "2.0.0";
  g.device_id = device_id;
  g.engine = "unreal";
  g.engine_version = "5.3.2";
  g.platform = "linux";
  g.os_version = "linux 6.1";
  return g;
}

eb::Settings Endpoints(const std::string& ingress, const std::string& configs) {
  eb::Settings s;
  s.ingress_endpoint = ingress;
  s.configs_endpoint = configs;
  return s;
}

// What one purchase callback or handler saw, by purchase id, and whether it always ran on the main thread.
struct Verdicts {
  std::thread::id main_thread;
  std::map<std::string, std::vector<eb::PurchaseResult>> by_id;
  bool other_thread = false;

  eb::PurchaseCallback Recorder() {
    return [this](const eb::PurchaseResult& r) {
      other_thread = other_thread || std::this_thread::get_id() != main_thread;
      by_id[r.id].push_back(r);
    };
  }
  std::size_t Count(const std::string& id) const {
    auto it = by_id.find(id);
    return it == by_id.end() ? 0 : it->second.size();
  }
  // The only verdict for `id` (a default one when there is none, which the checks' counts expose).
  eb::PurchaseResult Only(const std::string& id) const {
    return Count(id) == 1 ? by_id.at(id).front() : eb::PurchaseResult();
  }
  // "id xN, ..." for failure messages.
  std::string Describe() const {
    std::string out;
    for (const auto& [id, list] : by_id) out += id + " x" + std::to_string(list.size()) + " ";
    return out.empty() ? "nothing" : out;
  }
};

// A daemon whose GameAnalytics provider refuses an event by its own rules: the game hears it at once.
void ProviderRefusalChecks(const std::string& ingress, const std::string& configs) {
  eb::Client ga;
  Heard heard(ga);
  Check(ga.Connect(Game("cpp-ga-device"), Endpoints(ingress, configs)).ok(), "Connect to the GameAnalytics daemon");
  eb::EventOptions bad;
  bad.id = "cpp-ga-bad-1";
  // '#' is fine for the daemon and the binding, not for GameAnalytics' event_id parts.
  Check(ga.Track(eb::EventCategory::Design, {{"event_id", "ui:play#now"}}, bad).ok(),
        "an event_id GameAnalytics refuses passes the binding's and the daemon's checks");
  ga.TrackDesign("ui:play", 1.0);
  Check(WaitFor({&ga}, [&] { return AllAcked(ga) && !heard.refusals.empty(); }, 10s),
        "the ack's invalid entry reaches the refusal callback");
  {
    const eb::ProviderRefusal r = heard.refusals.empty() ? eb::ProviderRefusal() : heard.refusals.front();
    Check(heard.refusals.size() == 1 && r.event_id == "cpp-ga-bad-1" && r.provider == "gameanalytics" &&
              r.rule.find("play#now") != std::string::npos,
          "the callback names the event, the provider and the rule", r.event_id + " " + r.provider + " " + r.rule);
    Check(heard.Lines(eb::LogLevel::Warning, {"gameanalytics refuses event cpp-ga-bad-1", r.rule}) == 1,
          "a console warning names the event, the provider and the rule", heard.Describe());
    const eb::Stats s = ga.GetStats();
    Check(s.provider_refusals == 1 && s.stored == 2 && s.rejected == 0,
          "stats: one provider refusal, both events stored", "refusals " + Num(s.provider_refusals));
  }
  for (int n = 0; n < 20; ++n) {
    eb::EventOptions burst;
    burst.id = "cpp-ga-burst-" + std::to_string(n);
    ga.Track(eb::EventCategory::Design, {{"event_id", "ui:burst#" + std::to_string(n)}}, burst);
  }
  Check(WaitFor({&ga}, [&] { return heard.refusals.size() == 21; }, 10s) && ga.GetStats().provider_refusals == 21,
        "every refusal of a burst reaches the callback and the counter", Num(heard.refusals.size()));
  Check(heard.Lines(eb::LogLevel::Warning, {"refuses event"}) == 1,
        "the console warning is rate-limited: one line for 21 refusals within its window", heard.Describe());
  Check(!heard.other_thread, "refusals and log lines reach the game on the thread calling Poll");
  ga.Shutdown(0ms);
}

// No daemon, then one; another program on the port: said once, and LastError cleared when the daemon is back.
void ConnectionChecks(const std::string& late_ingress, const std::string& late_configs, const std::string& wrong) {
  {
    eb::Client other;
    Heard heard(other);
    other.Connect(Game("cpp-wrong-peer"), Endpoints(wrong, late_configs));
    Check(WaitFor({&other}, [&] { return heard.Saw(eb::ConnectionState::WrongPeer); }, 15s),
          "a program that is not engine-bridge on the port: state WrongPeer", heard.Describe());
    // libzmq keeps trying; the game is not told again at each attempt.
    const auto tries = [] { return std::stoi(Ask("wrong_connections")); };
    const int seen = tries();
    bool retried = false;
    for (auto deadline = Clock::now() + 20s; !retried && Clock::now() < deadline; std::this_thread::sleep_for(200ms)) {
      other.Poll();
      retried = tries() >= seen + 3;
    }
    Check(retried, "the client keeps trying the port");
    other.Poll();
    const eb::Stats s = other.GetStats();
    Check(heard.Lines(eb::LogLevel::Warning, {"another program holds " + wrong}) == 1 && heard.log.size() == 1,
          "one console warning says another program holds the port", heard.Describe());
    Check(s.connection == eb::ConnectionState::WrongPeer && s.last_error.find(wrong) != std::string::npos && !s.connected,
          "Stats: WrongPeer, and last_error names the endpoint", s.last_error);
    other.Shutdown(0ms);
  }
  eb::Client late;
  Heard heard(late);
  Check(late.Connect(Game("cpp-late-device"), Endpoints(late_ingress, late_configs)).ok(), "Connect with no daemon running");
  late.TrackDesign("late:before");
  Check(WaitFor({&late}, [&] { return heard.Saw(eb::ConnectionState::Unreachable); }, 10s),
        "no daemon: state Unreachable within seconds", heard.Describe());
  {
    const eb::Stats s = late.GetStats();
    Check(heard.Lines(eb::LogLevel::Warning, {"no daemon answers at " + late_ingress, "engine-bridge run"}) == 1,
          "one console warning says no daemon answers, and how to start one", heard.Describe());
    Check(s.connection == eb::ConnectionState::Unreachable && s.last_error.find(late_ingress) != std::string::npos,
          "Stats: Unreachable, and last_error names the endpoint", s.last_error);
  }
  Ask("late_start");
  Check(WaitFor({&late}, [&] { return late.GetStats().connected && AllAcked(late); }, 10s),
        "the daemon starts: the client connects and the waiting event is stored");
  {
    const eb::Stats s = late.GetStats();
    Check(s.last_error.empty() && s.connection == eb::ConnectionState::Connected, "last_error cleared once connected",
          s.last_error);
    Check(heard.states == std::vector<eb::ConnectionState>{eb::ConnectionState::Unreachable, eb::ConnectionState::Connected},
          "the connection callback saw Unreachable, then Connected");
    Check(heard.Lines(eb::LogLevel::Info, {"connected to engine-bridge", late_ingress}) == 1,
          "the console says when the daemon is back", heard.Describe());
    Check(!heard.other_thread, "connection changes reach the game on the thread calling Poll");
  }
  late.Shutdown(0ms);
}

// A full queue drops only events that never reached the daemon, and counts exactly those.
void DropChecks(const std::string& ingress, const std::string& configs) {
  eb::Client drops;
  eb::Settings settings = Endpoints(ingress, configs);
  settings.queue_capacity = 100;
  drops.Connect(Game("cpp-drops-device"), settings);
  Check(WaitFor({&drops}, [&] { return drops.GetStats().connected; }, 10s), "a client with a queue of 100");
  Ask("freeze");
  drops.TrackCustom("drops", {{"n", 0}});
  Check(WaitFor({&drops}, [&] { return drops.GetStats().in_flight == 1; }, 5s), "event 0 sent to the frozen daemon");
  for (int n = 1; n < 250; ++n) drops.TrackCustom("drops", {{"n", n}});
  const eb::Stats full = drops.GetStats();
  Check(full.dropped == 150 && full.abandoned == 0 && full.queued == 100 && full.in_flight == 1,
        "250 events into 100 slots: the 150 oldest never sent are dropped, the one in flight is kept",
        "dropped " + Num(full.dropped) + " abandoned " + Num(full.abandoned) + " queued " + Num(full.queued));
  Ask("thaw");
  Check(WaitFor({&drops}, [&] { return AllAcked(drops); }, 15s), "after the thaw every kept event is acknowledged");
  const std::uint64_t stored = std::stoull(Ask("count cpp-drops-device"));
  const eb::Stats s = drops.GetStats();
  Check(stored + s.dropped == s.tracked && s.stored == stored, "dropped counts exactly the events the daemon never got",
        Num(stored) + " stored + " + Num(s.dropped) + " dropped vs " + Num(s.tracked) + " tracked");
  drops.Shutdown(0ms);
}

eb::Purchase ApplePurchase(const std::string& id, const std::string& receipt) {
  eb::Purchase p;
  p.id = id;
  p.store = eb::PurchaseStore::Apple;
  p.receipt = receipt;
  p.price_usd = 4.99;
  p.status = "completed";
  p.comment = "gem pack";
  p.metadata = {{"sku", "gems_500"}};
  return p;
}

// Purchases verified through the staq sandbox: in the reply, late on the topic, and for an earlier run.
void PurchaseChecks(const std::string& ingress, const std::string& configs, std::thread::id main_thread) {
  // base64 of "cpp-good-receipt", "cpp-refused-receipt", "cpp-late-receipt", "cpp-earlier-receipt",
  // "cpp-after-receipt": the sandbox refuses receipts that are not base64.
  const std::string good = "Y3BwLWdvb2QtcmVjZWlwdA==", refused = "Y3BwLXJlZnVzZWQtcmVjZWlwdA==",
                    late = "Y3BwLWxhdGUtcmVjZWlwdA==", earlier = "Y3BwLWVhcmxpZXItcmVjZWlwdA==",
                    after = "Y3BwLWFmdGVyLXJlY2VpcHQ=";
  for (const std::string& r : {good, late, earlier, after}) Ask("receipt " + r + " valid");
  Ask("receipt " + refused + " invalid");
  const eb::Settings staq = Endpoints(ingress, configs);

  // A buyer that stays for the whole section: its own purchases never reach its game-wide handler.
  eb::Client buyer;
  Verdicts mine{main_thread}, buyer_handler{main_thread};
  buyer.SetPurchaseHandler(buyer_handler.Recorder());
  Check(buyer.Connect(Game("cpp-buyer"), staq).ok(), "Connect to the staq daemon");

  std::string generated;
  eb::Purchase first = ApplePurchase("", good);
  const auto sent_at = Clock::now();
  Check(buyer.VerifyPurchase(first, mine.Recorder(), &generated).ok(), "VerifyPurchase while connected");
  const auto returned_at = Clock::now();
  Check(WaitFor({&buyer}, [&] { return mine.Count(generated) > 0; }, 15s), "the verdict reaches the callback",
        mine.Describe());
  std::cout << "VerifyPurchase returned in " << std::chrono::duration<double, std::micro>(returned_at - sent_at).count()
            << " us; its verdict reached the callback after "
            << std::chrono::duration<double, std::milli>(Clock::now() - sent_at).count() << " ms" << std::endl;
  {
    const eb::PurchaseResult r = mine.Only(generated);
    Check(generated.size() == 36 && r.ok && r.is_valid && !r.is_duplicate && r.Grantable() && r.store == "apple" &&
              r.reason == "verified by staq" && r.error_code.empty(),
          "verified while connected: valid, not a duplicate, grantable",
          r.id + " valid " + std::to_string(r.is_valid) + " duplicate " + std::to_string(r.is_duplicate) + " " + r.reason);
  }
  buyer.VerifyPurchase(ApplePurchase("cpp-dup-1", good), mine.Recorder());
  buyer.VerifyPurchase(ApplePurchase("cpp-refused-1", refused), mine.Recorder());
  Check(WaitFor({&buyer}, [&] { return mine.Count("cpp-dup-1") > 0 && mine.Count("cpp-refused-1") > 0; }, 15s),
        "verdicts on a replayed and a refused receipt arrive", mine.Describe());
  {
    const eb::PurchaseResult dup = mine.Only("cpp-dup-1");
    Check(dup.ok && dup.is_duplicate && !dup.Grantable(), "the same receipt under another id: is_duplicate, not grantable");
    const eb::PurchaseResult bad = mine.Only("cpp-refused-1");
    Check(bad.ok && !bad.is_valid && !bad.Grantable(), "a receipt the store refuses: is_valid false");
  }

  // staq down: the daemon stores the purchases and answers `pending` after 5 s. A returning player's
  // earlier run makes one purchase and quits before its verdict.
  Ask("staq_down");
  Verdicts earlier_run{main_thread};
  {
    eb::Client gone;
    gone.Connect(Game("cpp-returning"), staq);
    gone.VerifyPurchase(ApplePurchase("cpp-earlier-1", earlier), earlier_run.Recorder());
    buyer.VerifyPurchase(ApplePurchase("cpp-late-1", late), mine.Recorder());
    // Longer than the daemon holds a purchase reply: both replies said `pending` by the end.
    WaitFor({&buyer, &gone}, [] { return false; }, 7s);
    Check(mine.Count("cpp-late-1") == 0 && earlier_run.Count("cpp-earlier-1") == 0,
          "no callback while staq is down: the reply said pending", mine.Describe() + earlier_run.Describe());
    gone.Shutdown();
  }
  const auto up_at = Clock::now();
  Ask("staq_up");
  Check(WaitFor({&buyer}, [&] { return mine.Count("cpp-late-1") > 0; }, 15s),
        "pending, then the verdict arrives late on the topic", mine.Describe());
  std::cout << "the late verdict reached the callback " << std::chrono::duration<double, std::milli>(Clock::now() - up_at).count()
            << " ms after staq came back (the daemon retries every 0.4 s at most here)" << std::endl;
  {
    const eb::PurchaseResult r = mine.Only("cpp-late-1");
    Check(r.ok && r.is_valid && r.Grantable() && r.store == "apple" && r.verified_at.value_or(0) > 1600000000000,
          "the late verdict: valid, with the time the daemon recorded it");
  }

  // The player returns: a new client of that device hears the earlier run's verdict once, in its handler.
  eb::Client back;
  Verdicts back_handler{main_thread}, back_calls{main_thread};
  back.SetPurchaseHandler(back_handler.Recorder());
  back.Connect(Game("cpp-returning"), staq);
  Check(WaitFor({&back}, [&] { return back_handler.Count("cpp-earlier-1") > 0; }, 15s),
        "after a restart the earlier run's verdict reaches the game-wide handler", back_handler.Describe());
  {
    const eb::PurchaseResult r = back_handler.Only("cpp-earlier-1");
    Check(r.ok && r.is_valid && r.Grantable() && r.store == "apple", "the earlier run's verdict: valid, grantable");
  }
  // A new purchase republishes the device's verdicts: the old ones are not told again.
  back.VerifyPurchase(ApplePurchase("cpp-after-1", after), back_calls.Recorder());
  Check(WaitFor({&back}, [&] { return back_calls.Count("cpp-after-1") > 0; }, 15s), "a purchase of the returned client",
        back_calls.Describe());
  WaitFor({&buyer, &back}, [] { return false; }, 1s);

  // The staq daemon restarts: both clients reconnect and the topic's snapshot comes again.
  const std::uint64_t buyer_welcomes = buyer.GetStats().reconnects, back_welcomes = back.GetStats().reconnects;
  Ask("staq_daemon_restart");
  Check(WaitFor({&buyer, &back}, [&] {
          return buyer.GetStats().reconnects > buyer_welcomes && back.GetStats().reconnects > back_welcomes;
        }, 20s),
        "both clients reconnect to the restarted daemon");
  WaitFor({&buyer, &back}, [] { return false; }, 3s);  // the resubscribed topic's snapshot arrives
  const bool buyer_once = mine.by_id.size() == 4 && mine.Count(generated) == 1 && mine.Count("cpp-dup-1") == 1 &&
                          mine.Count("cpp-refused-1") == 1 && mine.Count("cpp-late-1") == 1;
  Check(buyer_once, "every VerifyPurchase callback ran exactly once", mine.Describe());
  Check(buyer_handler.by_id.empty(), "the handler never hears of the client's own purchases", buyer_handler.Describe());
  Check(back_handler.by_id.size() == 1 && back_handler.Count("cpp-earlier-1") == 1,
        "the earlier run's verdict reached the handler once, despite republishes and a reconnect",
        back_handler.Describe());
  Check(back_calls.by_id.size() == 1 && back_calls.Count("cpp-after-1") == 1, "the new purchase's callback ran once",
        back_calls.Describe());
  Check(!mine.other_thread && !back_handler.other_thread && !back_calls.other_thread,
        "purchase callbacks and the handler run on the thread calling Poll");

  // Another start of that device whose handler comes late: the verdicts wait for it. Verifying an id the
  // handler already had still answers that call, and the handler is not told twice.
  eb::Client third;
  Verdicts third_handler{main_thread}, third_calls{main_thread};
  third.Connect(Game("cpp-returning"), staq);
  WaitFor({&third}, [&] { return third.GetStats().connected; }, 10s);
  WaitFor({&third}, [] { return false; }, 1s);
  third.SetPurchaseHandler(third_handler.Recorder());
  Check(WaitFor({&third}, [&] { return third_handler.by_id.size() == 2; }, 10s) &&
            third_handler.Count("cpp-earlier-1") == 1 && third_handler.Count("cpp-after-1") == 1,
        "verdicts that came before the handler was set reach it once", third_handler.Describe());
  third.VerifyPurchase(ApplePurchase("cpp-earlier-1", earlier), third_calls.Recorder());
  Check(WaitFor({&third}, [&] { return third_calls.Count("cpp-earlier-1") > 0; }, 15s), "re-verifying a known id answers the call");
  WaitFor({&third}, [] { return false; }, 500ms);
  {
    const eb::PurchaseResult r = third_calls.Only("cpp-earlier-1");
    Check(r.ok && r.is_valid && !r.is_duplicate && third_handler.Count("cpp-earlier-1") == 1,
          "the resent purchase is the same purchase: valid, not a duplicate, and the handler not told again",
          third_handler.Describe());
  }
  third.Shutdown(0ms);
  back.Shutdown(0ms);
  buyer.Shutdown(0ms);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 14) {
    std::cerr << "usage: engine_bridge_test INGRESS CONFIGS STAQ_INGRESS STAQ_CONFIGS GA_INGRESS GA_CONFIGS LATE_INGRESS "
                 "LATE_CONFIGS WRONG LAUNCH_INGRESS LAUNCH_CONFIGS LAUNCH_LOG DAEMON_ARGV...\n";
    return 2;
  }
  const std::string ingress = argv[1], configs = argv[2];
  const std::thread::id main_thread = std::this_thread::get_id();

  // --- connect --------------------------------------------------------------------------------------------
  eb::Client client;
  Check(client.TrackDesign("ui:play").code() == eb::ErrorCode::NotConnected, "Track before Connect says NotConnected");
  {
    eb::GameInfo nameless = Game("");
    eb::Status s = client.Connect(nameless, Endpoints(ingress, configs));
    Check(s.code() == eb::ErrorCode::InvalidArgument && s.message().find("device_id") != std::string::npos,
          "Connect without device_id is refused", s.message());
    eb::GameInfo long_build = Game("x");
    long_build.game_build = std::string(33, '1');
    s = client.Connect(long_build, Endpoints(ingress, configs));
    Check(s.code() == eb::ErrorCode::InvalidArgument && s.message().find("game_build") != std::string::npos,
          "Connect with a 33-char game_build is refused", s.message());
  }
  {
    eb::Status s = client.Connect(Game("cpp-test-device"), Endpoints("nonsense-endpoint", configs));
    Check(s.code() == eb::ErrorCode::InvalidArgument && s.message().find("nonsense-endpoint") != std::string::npos,
          "Connect with a malformed endpoint is refused", s.message());
  }
  Check(client.Connect(Game("cpp-test-device"), Endpoints(ingress, configs)).ok(), "Connect");
  Check(client.Connect(Game("cpp-test-device"), Endpoints(ingress, configs)).code() == eb::ErrorCode::AlreadyConnected,
        "Connect twice says AlreadyConnected");
  Check(WaitFor({&client}, [&] { return client.GetStats().connected; }, 10s), "hello answered by welcome");

  // --- every event helper -------------------------------------------------------------------------------
  Check(client.TrackDesign("ui:click:play", 1.5).ok(), "TrackDesign");
  Check(client.TrackBusiness("USD", 99, "gems", "pack_small", "shop").ok(), "TrackBusiness");
  Check(client.TrackProgression(eb::ProgressionStatus::Complete, "world01", "level02", "boss", 1200, 2).ok(),
        "TrackProgression");
  Check(client.TrackResource(eb::ResourceFlow::Sink, "gold", 250.5, "weapon", "sword").ok(), "TrackResource");
  Check(client.TrackError(eb::ErrorSeverity::Critical, "NullReference in Player.Update").ok(), "TrackError");
  Check(client.TrackAd(eb::AdAction::Show, eb::AdType::RewardedVideo, "admob", "end_of_level", 30000).ok(), "TrackAd");
  Check(client.TrackAd(eb::AdAction::FailedShow, eb::AdType::AppOpen, "applovin_max", "launch", std::nullopt,
                       eb::AdFailShowReason::UnableToPrecache).ok(),
        "TrackAd with fail_show_reason");
  // 2.0's form (extra in sixth place) with the deprecated ad_fb_error: sent as ad_fail_show_reason.
  Check(client.TrackAd(eb::AdAction::FailedShow, eb::AdType::Video, "admob", "end_of_level", 0,
                       {{"ad_fb_error", "no_fill"}, {"custom_01", "vip"}}).ok(),
        "TrackAd with the deprecated ad_fb_error");
  Check(client.TrackImpression("max", "12.4.1",
                               {{"revenue", 0.0123},
                                {"currency", "USD"},
                                {"precision", "exact"},
                                {"ad_unit", eb::Value::Map{{"id", "u-1"}, {"format", "REWARDED"}}}})
            .ok(),
        "TrackImpression");
  Check(client.Track(eb::EventCategory::Impression,
                     {{"ad_network_name", "admob"},
                      {"ad_network_version", "23.0.0"},
                      {"impression_data", eb::Value::Map{{"value_micros", 1200}, {"currency_code", "EUR"}}}})
            .ok(),
        "Track (impression)");
  Check(client.TrackCustom("tutorial_step", {{"step", 3},
                                            {"skipped", true},
                                            {"ratio", 0.25},
                                            {"tags", eb::Value::Array{"a", "b"}},
                                            {"nested", eb::Value::Map{{"k", "v"}}},
                                            {"unicode", "h\xc3\xa9llo \xe2\x9c\x93"}})
            .ok(),
        "TrackCustom");
  {
    eb::EventOptions opts;
    opts.id = "cpp-generic-1";
    opts.user_id = "player-7";
    opts.timestamp_ms = 1700000000000;
    Check(client.Track(eb::EventCategory::Design, {{"event_id", "generic:event"}, {"value", 2.0}}, opts).ok(), "Track (generic)");
  }
  Check(WaitFor({&client}, [&] { return AllAcked(client); }, 10s), "every event acknowledged");
  {
    const eb::Stats s = client.GetStats();
    Check(s.tracked == 12 && s.stored == 12 && s.acknowledged == 12 && s.in_flight == 0 && s.rejected == 0,
          "ack counts: 12 tracked, 12 stored, none rejected",
          "tracked " + Num(s.tracked) + " stored " + Num(s.stored) + " rejected " + Num(s.rejected) + " (" +
              s.last_rejection + ")");
  }

  // --- sessions, flush, purchase --------------------------------------------------------------------------
  {
    std::vector<eb::Reply> replies;
    bool other_thread = false;
    auto keep = [&](const eb::Reply& r) {
      other_thread = other_thread || std::this_thread::get_id() != main_thread;
      replies.push_back(r);
    };
    std::vector<eb::Reply> player_replies;
    eb::SessionOptions player;
    player.user_id = "player-9";
    player.user_ip = "203.0.113.9";
    player.timestamp_ms = 1700000000000;
    client.StartSession([&](const eb::Reply& r) { player_replies.push_back(r); }, player);
    client.EndSession([&](const eb::Reply& r) { player_replies.push_back(r); }, player);
    Check(WaitFor({&client}, [&] { return player_replies.size() == 2; }, 10s), "a dedicated server's session of another player");
    if (player_replies.size() == 2) {
      const eb::Value* user = player_replies[0].body.Find("user_id");
      const eb::Value* started = player_replies[0].body.Find("started_at");
      Check(player_replies[0].ok && user && user->AsString() && *user->AsString() == "player-9" && started &&
                started->AsInt().value_or(0) == 1700000000000 && player_replies[1].ok && player_replies[1].type == "session",
            "SessionOptions: the player's session, from the given time, started and ended");
    }
    client.StartSession(keep);
    client.TrackDesign("session:inside", 1.0);
    client.Flush(keep);
    client.EndSession(keep);
    client.EndSession(keep);
    eb::Purchase p;
    p.id = "purchase-1";
    p.store = eb::PurchaseStore::GooglePlay;
    p.receipt = "cmVjZWlwdC1kYXRh";  // base64 "receipt-data"
    p.signature = "c2ln";
    p.price_usd = 0.99;
    std::vector<eb::PurchaseResult> refusals;
    client.VerifyPurchase(p, [&](const eb::PurchaseResult& r) { refusals.push_back(r); });
    const bool all_replies = WaitFor({&client}, [&] { return replies.size() == 4 && !refusals.empty(); }, 10s);
    Check(all_replies, "four replies and the purchase's answer arrive", Num(replies.size()) + " replies");
    Check(!other_thread, "reply callbacks run on the thread calling Poll");
    if (all_replies) {
      // Replies to different requests may come in any order (protocol.md section 3): the flush is answered
      // off the daemon's ack path, so it is found by type; the session replies keep their order.
      auto flushed = std::find_if(replies.begin(), replies.end(), [](const eb::Reply& r) { return r.type == "flushed"; });
      Check(flushed != replies.end() && flushed->ok && flushed->body.Find("queued"), "Flush reply: flushed");
      if (flushed != replies.end()) replies.erase(flushed);
      replies.resize(4);
      const eb::Value* id = replies[0].body.Find("session_id");
      const eb::Value* num = replies[0].body.Find("session_num");
      Check(replies[0].ok && replies[0].type == "session" && id && id->AsString() && id->AsString()->size() == 36 &&
                num && num->AsInt().value_or(0) >= 1,
            "StartSession reply: a session with id and number");
      const eb::Value* ended = replies[1].body.Find("ended_at");
      Check(replies[1].ok && replies[1].type == "session" && ended && !ended->is_nil(), "EndSession reply: ended");
      Check(!replies[2].ok && replies[2].error_code == "no_session", "second EndSession: no_session",
            replies[2].error_code);
      const eb::PurchaseResult& r = refusals[0];
      Check(refusals.size() == 1 && !r.ok && r.error_code == "not_configured" && !r.message.empty() &&
                r.id == "purchase-1" && r.store == "googleplay" && !r.Grantable(),
            "VerifyPurchase: the daemon's not_configured error reaches the callback", r.error_code);
    }
  }

  // --- configs --------------------------------------------------------------------------------------------
  {
    std::vector<std::pair<std::string, eb::Value>> seen;
    bool other_thread = false;
    auto record = [&](std::string_view key, const eb::Value& v) {
      other_thread = other_thread || std::this_thread::get_id() != main_thread;
      seen.emplace_back(std::string(key), v);
    };
    auto saw = [&](const std::string& key, const eb::Value& v) {
      return std::find(seen.begin(), seen.end(), std::make_pair(key, v)) != seen.end();
    };
    // Subscribed long after connecting: the current value must come anyway.
    Check(client.SubscribeConfig("difficulty", record).ok(), "SubscribeConfig");
    client.SubscribeConfig("max_lives", record);
    client.SubscribeConfig("tutorial", record);
    Check(WaitFor({&client}, [&] { return saw("difficulty", "hard") && saw("max_lives", 5); }, 10s),
          "late subscribe gets the current values");
    Check(client.GetString("difficulty") == "hard", "GetString");
    Check(client.GetInt("max_lives") == 5, "GetInt");
    Check(client.GetDouble("max_lives") == 5.0, "GetDouble takes an integer");
    Check(client.GetBool("tutorial") == true, "GetBool");
    Check(client.GetInt("no_such_key", 42) == 42, "GetInt falls back when absent");
    Check(client.GetString("max_lives", "fallback") == "fallback", "GetString falls back on another type");
    Check(client.SubscribeConfig(nullptr, record).code() == eb::ErrorCode::InvalidArgument, "SubscribeConfig(null)");

    seen.clear();
    Ask("config difficulty = \"easy\"; max_lives = 7");
    Check(WaitFor({&client}, [&] { return saw("difficulty", "easy") && saw("max_lives", 7); }, 10s),
          "config change reaches the callbacks");
    Check(saw("tutorial", eb::Value()), "a removed key reaches its callback as nil");
    Check(client.GetInt("max_lives") == 7 && client.GetString("difficulty") == "easy", "getters see the change");
    Check(!other_thread, "config callbacks run on the thread calling Poll");
  }

  // --- purchases verified through staq, on the second daemon ----------------------------------------------
  PurchaseChecks(argv[3], argv[4], main_thread);

  // --- what the game hears: provider refusals, the daemon's absence, another program on the port ----------
  ProviderRefusalChecks(argv[5], argv[6]);
  ConnectionChecks(argv[7], argv[8], argv[9]);

  // --- bad arguments: a clear error at the call site, nothing queued ---------------------------------------
  {
    const std::uint64_t tracked_before = client.GetStats().tracked;
    const char* null_name = nullptr;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    CheckInvalid(client, client.TrackCustom(null_name), "null custom name", "name is null");
    CheckInvalid(client, client.TrackDesign(nullptr), "null design event_id", "event_id is null");
    CheckInvalid(client, client.TrackBusiness("USD", 99, "gems", nullptr), "null item_id", "item_id is null");
    CheckInvalid(client, client.Track(static_cast<eb::EventCategory>(99), {}), "category outside the enum",
                 "category is not a value");
    CheckInvalid(client, client.TrackResource(eb::ResourceFlow::Source, "gold", nan, "reward", "daily"), "NaN amount",
                 "finite");
    CheckInvalid(client, client.TrackDesign("a:b", std::numeric_limits<double>::infinity()), "infinite value", "finite");
    CheckInvalid(client, client.TrackCustom("n", {{"v", eb::Value::Array{1, nan}}}), "NaN inside fields",
                 "fields.v[1]");
    eb::EventOptions long_id;
    long_id.id = std::string(65, 'a');
    CheckInvalid(client, client.Track(eb::EventCategory::Design, {{"event_id", "a:b"}}, long_id), "65-char event id", "1..64");
    eb::EventOptions bad_id;
    bad_id.id = "has space";
    CheckInvalid(client, client.Track(eb::EventCategory::Design, {{"event_id", "a:b"}}, bad_id), "event id with a space", "characters");
    eb::EventOptions long_user;
    long_user.user_id = std::string(129, 'u');
    CheckInvalid(client, client.Track(eb::EventCategory::Design, {{"event_id", "a:b"}}, long_user), "129-char user_id", "user_id");
    CheckInvalid(client, client.TrackCustom(std::string(65, 'n')), "65-char custom name", "name must be 1..64");
    CheckInvalid(client, client.TrackDesign(std::string(65, 'x') + ":y"), "65-char event_id part", "part");
    CheckInvalid(client, client.TrackBusiness("usd", 99, "gems", "pack"), "lower-case currency", "ISO 4217");
    CheckInvalid(client, client.TrackDesign("a:b:c:d:e:f"), "six-part design event_id", "1 to 5 parts");
    CheckInvalid(client, client.TrackDesign(""), "empty design event_id", "event_id must be 1..");
    CheckInvalid(client, client.TrackProgression(eb::ProgressionStatus::Start, "w", {}, "phase"),
                 "progression03 without progression02", "progression02");
    CheckInvalid(client, client.Track(eb::EventCategory::Business, {{"event_id", "a:b"}, {"amount", 5}}), "missing currency",
                 "currency is required");
    CheckInvalid(client, client.Track(eb::EventCategory::Business, {{"event_id", "a:b"}, {"amount", 1.5}, {"currency", "USD"}}),
                 "float business amount", "integer");
    CheckInvalid(client, client.TrackDesign("a:b", 1.0, {{"event_id", "again"}}), "field given twice", "twice");
    eb::Fields many;
    for (int i = 0; i < 65; ++i) many.emplace_back("f" + std::to_string(i), i);
    CheckInvalid(client, client.TrackCustom("n", many), "65 fields", "the limit is 64");
    eb::Value deep = eb::Value::Map{{"d4", eb::Value::Map{{"x", 1}}}};
    for (int level = 3; level >= 1; --level) deep = eb::Value::Map{{"d" + std::to_string(level), deep}};
    CheckInvalid(client, client.TrackCustom("n", {{"deep", deep}}), "nesting over 4 levels", "deeper");
    CheckInvalid(client, client.TrackError(eb::ErrorSeverity::Error, std::string(8193, 'm')), "8193-char string",
                 "8192");
    CheckInvalid(client, client.TrackCustom("n", {{"s", "bad \xff utf-8"}}), "invalid UTF-8", "UTF-8");
    CheckInvalid(client, client.TrackCustom("n", {{"", 1}}), "empty field name", "key");
    CheckInvalid(client, client.TrackAd(eb::AdAction::Show, static_cast<eb::AdType>(7), "admob", "menu"),
                 "ad type outside the enum", "ad_type");
    CheckInvalid(client, client.TrackAd(eb::AdAction::FailedShow, eb::AdType::Banner, "admob", "menu", std::nullopt,
                                        static_cast<eb::AdFailShowReason>(6)),
                 "fail_show_reason outside the enum", "fail_show_reason");
    CheckInvalid(client, client.TrackAd(eb::AdAction::FailedShow, eb::AdType::Banner, "admob", "menu", std::nullopt,
                                        {{"ad_fb_error", "timeout"}}),
                 "deprecated ad_fb_error that is no reason", "ad_fb_error");
    CheckInvalid(client, client.TrackAd(eb::AdAction::FailedShow, eb::AdType::Banner, "admob", "menu", std::nullopt,
                                        {{"ad_fb_error", 3}}),
                 "deprecated ad_fb_error that is no string", "ad_fb_error");
    CheckInvalid(client, client.TrackAd(eb::AdAction::FailedShow, eb::AdType::Banner, "admob", "menu", std::nullopt,
                                        eb::AdFailShowReason::Offline, {{"ad_fb_error", "offline"}}),
                 "ad_fb_error and fail_show_reason both", "fail_show_reason alone");
    CheckInvalid(client, client.TrackAd(eb::AdAction::FailedShow, eb::AdType::Banner, "admob", "menu", std::nullopt,
                                        eb::AdFailShowReason::Offline, {{"ad_fail_show_reason", "offline"}}),
                 "ad_fail_show_reason given twice", "twice");
    const eb::Value::Map impression{{"revenue", 0.01}};
    CheckInvalid(client, client.TrackImpression("", "1.0", impression), "empty ad_network_name", "ad_network_name");
    CheckInvalid(client, client.TrackImpression("max", std::string(65, 'v'), impression), "65-char ad_network_version",
                 "ad_network_version");
    CheckInvalid(client, client.TrackImpression("max", "1.0", {{"revenue", nan}}), "NaN in impression_data",
                 "fields.impression_data.revenue");
    eb::Value too_deep = eb::Value::Map{{"k", eb::Value::Map{{"k", eb::Value::Map{{"k", 1}}}}}};
    CheckInvalid(client, client.TrackImpression("max", "1.0", {{"a", too_deep}}), "impression_data over 4 levels",
                 "deeper");
    CheckInvalid(client, client.TrackImpression("max", "1.0", impression, {{"impression_data", 1}}),
                 "impression_data given twice", "twice");
    CheckInvalid(client, client.Track(eb::EventCategory::Impression, {{"ad_network_name", "max"}, {"ad_network_version", "1"}}),
                 "impression without impression_data", "impression_data is required");
    CheckInvalid(client, client.Track(eb::EventCategory::Impression, {{"ad_network_name", "max"}, {"ad_network_version", "1"},
                                                                      {"impression_data", "{}"}}),
                 "impression_data that is no map", "a map");
    eb::Purchase google;
    google.store = eb::PurchaseStore::GooglePlay;
    google.receipt = "r";
    google.receipt = "cg==";
    const auto ignore = [](const eb::PurchaseResult&) {};
    CheckInvalid(client, client.VerifyPurchase(google, ignore), "Google Play purchase without signature", "signature");
    google.signature = "not base64!";
    CheckInvalid(client, client.VerifyPurchase(google, ignore), "signature that is not base64", "Purchase.signature must be standard base64");
    google.store = static_cast<eb::PurchaseStore>(7);
    CheckInvalid(client, client.VerifyPurchase(google, ignore), "purchase store outside the enum", "Purchase.store");
    google.store = eb::PurchaseStore::Apple;
    google.id = std::string(65, 'p');
    CheckInvalid(client, client.VerifyPurchase(google, ignore), "65-char purchase id", "Purchase.id");
    google.id.clear();
    CheckInvalid(client, client.VerifyPurchase(google, nullptr), "purchase without callback", "on_result");
    google.receipt = "cmVjZWlwdA";
    CheckInvalid(client, client.VerifyPurchase(google, ignore), "unpadded base64 receipt", "multiple of 4");
    google.receipt = "cg==";
    google.status = "done";
    CheckInvalid(client, client.VerifyPurchase(google, ignore), "purchase status outside the set", "Purchase.status");
    google.status = "processing";
    google.comment = std::string(1025, 'c');
    CheckInvalid(client, client.VerifyPurchase(google, ignore), "1025-char purchase comment", "Purchase.comment");
    eb::SessionOptions long_ip;
    long_ip.user_ip = std::string(46, '1');
    CheckInvalid(client, client.StartSession(nullptr, long_ip), "46-char user_ip", "SessionOptions.user_ip");
    Check(client.GetStats().tracked == tracked_before, "refused calls queue nothing",
          Num(client.GetStats().tracked - tracked_before) + " queued");
    // A NaN in an allowed place still never reaches the wire: 1 valid event after all of that is stored.
    const bool acked = WaitFor({&client}, [&] { return AllAcked(client); }, 10s);
    Check(acked && client.GetStats().rejected == 0, "the daemon rejected nothing", client.GetStats().last_rejection);
  }

  DropChecks(ingress, configs);

  // --- daemon killed and restarted mid-stream -----------------------------------------------------------
  const int kStream = 2000;
  const int kOutageEvents = 6000;
  for (int n = 0; n < 1000; ++n) client.TrackCustom("stream", {{"n", n}});
  Check(WaitFor({&client}, [&] { return AllAcked(client); }, 20s), "stream 0..999 acknowledged");
  const std::uint64_t acked_at_freeze = client.GetStats().acknowledged;
  Ask("freeze");
  for (int n = 1000; n < 1500; ++n) client.TrackCustom("stream", {{"n", n}});
  Check(WaitFor({&client}, [&] { return client.GetStats().in_flight > 0; }, 5s),
        "stream 1000.. sent to the frozen daemon, unacknowledged");
  const eb::Stats before_kill = client.GetStats();
  const std::uint64_t stream_acked = 1000 + before_kill.acknowledged - acked_at_freeze;
  const std::string stored_after_kill = Ask("kill");
  Check(std::stoull(stored_after_kill) >= stream_acked, "every acknowledged event survived kill -9",
        stored_after_kill + " stored, " + Num(stream_acked) + " acknowledged");

  // The daemon is gone: Track must still return at once, and a small queue drops its oldest.
  double worst_us = 0;
  std::string worst_call;
  const auto timed = [&](const std::string& what, auto&& call) {
    const auto t0 = Clock::now();
    call();
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (us > worst_us) {
      worst_us = us;
      worst_call = what;
    }
  };
  for (int n = 1500; n < kStream; ++n) timed("stream " + std::to_string(n), [&] { client.TrackCustom("stream", {{"n", n}}); });
  eb::Client small;
  eb::Settings small_settings = Endpoints(ingress, configs);
  small_settings.queue_capacity = 100;
  Check(small.Connect(Game("cpp-overflow-device"), small_settings).ok(), "Connect while the daemon is down");
  for (int n = 0; n < 150; ++n) small.TrackCustom("overflow", {{"n", n}});
  {
    const eb::Stats s = small.GetStats();
    Check(s.dropped == 50 && s.queued == 100, "a full queue drops the oldest and counts them",
          "dropped " + Num(s.dropped) + " queued " + Num(s.queued));
  }
  for (int n = 150; n < 20150; ++n) timed("overflow " + std::to_string(n), [&] { small.TrackCustom("overflow", {{"n", n}}); });
  std::cout << "worst Track call while the daemon was down: " << worst_us << " us (" << worst_call << ")" << std::endl;
  // A blocking call would wait for the network (seconds); being descheduled on a busy 2-core machine costs up to
  // a tenth of that (measured: 114 ms for a Track call with no daemon and an idle I/O thread, at load 5).
  Check(worst_us < 500000, "Track never blocks while the daemon is down", std::to_string(worst_us) + " us");
  Check(small.GetStats().dropped == 20050, "drop count after 20150 events into 100 slots",
        Num(small.GetStats().dropped));

  // The issue's outage: ~1,000 events/s for 6 s while the daemon is away; the default queue keeps them all.
  const auto outage_start = Clock::now();
  for (int n = 0; n < kOutageEvents; ++n) {
    client.TrackCustom("outage", {{"n", n}});
    if (n % 100 == 99) std::this_thread::sleep_until(outage_start + std::chrono::milliseconds(n + 1));
  }
  Ask("start");
  const auto back = Clock::now();
  Check(WaitFor({&client}, [&] { return client.GetStats().connected; }, 10s), "the client reconnects");
  const double reconnect_ms = std::chrono::duration<double, std::milli>(Clock::now() - back).count();
  std::cout << "reconnected " << reconnect_ms << " ms after the daemon was back from a "
            << std::chrono::duration<double>(back - outage_start).count() << " s outage" << std::endl;
  // With libzmq's backoff capped at 5 s this took up to 5 s; capped at 1 s, about 1 s at most.
  Check(reconnect_ms < 2000, "the client reconnects within 2 s of the daemon coming back", std::to_string(reconnect_ms));
  const bool drained = WaitFor({&client, &small}, [&] { return AllAcked(client) && AllAcked(small); }, 30s);
  Check(drained, "after the restart every queued event is acknowledged",
        "queued " + Num(client.GetStats().queued) + " and " + Num(small.GetStats().queued));
  {
    const eb::Stats s = client.GetStats();
    Check(s.reconnects >= 1, "the restart was seen as a reconnect", Num(s.reconnects));
    Check(s.resent >= before_kill.in_flight, "the unacknowledged events were resent",
          Num(s.resent) + " resent, " + Num(before_kill.in_flight) + " were in flight at the kill");
    Check(s.dropped == 0, "the big queue dropped nothing", Num(s.dropped));
  }

  // --- the launcher -------------------------------------------------------------------------------------
  {
    eb::Settings launch = Endpoints(argv[10], argv[11]);
    launch.daemon.command.assign(argv + 13, argv + argc);
    launch.daemon.log_path = argv[12];
    launch.daemon.probe = 300ms;
    eb::Client launched;
    Check(launched.Connect(Game("cpp-launch-device"), launch).ok(), "Connect with a launch command");
    for (int n = 0; n < 10; ++n) launched.TrackCustom("launched", {{"n", n}});
    const bool reached = WaitFor({&launched}, [&] { return AllAcked(launched); }, 30s);
    Check(reached, "events reach the launched daemon", "queued " + Num(launched.GetStats().queued));
    const std::int64_t pid = launched.GetStats().daemon_pid;
    Check(pid > 0, "the launched daemon's pid is reported", std::to_string(pid));
    const auto t0 = Clock::now();
    launched.Shutdown();
    const bool gone = pid > 0 && ::kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH;
    Check(gone, "Shutdown stops the launched daemon");
    std::cout << "Shutdown with a launched daemon took "
              << std::chrono::duration<double, std::milli>(Clock::now() - t0).count() << " ms" << std::endl;
  }

  // --- shutdown -------------------------------------------------------------------------------------------
  client.TrackDesign("quit:now");
  client.Shutdown();
  Check(client.GetStats().queued == 0, "Shutdown delivered the last event within its grace");
  Check(client.TrackDesign("after:shutdown").code() == eb::ErrorCode::NotConnected, "Track after Shutdown says NotConnected");
  small.Shutdown(0ms);

  std::cout << g_passed << " passed, " << g_failed << " failed" << std::endl;
  return g_failed == 0 ? 0 : 1;
}
