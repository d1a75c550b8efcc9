// The C++ binding against real daemons. Driven by tests/bindings/test_cpp.py, which starts two daemons (one
// without providers, one whose staq provider is a local staq sandbox) and answers this program's requests
// to change them: a line "@@ <command>" on stdout, then one reply line on stdin. Commands for the first
// daemon: freeze (SIGSTOP), kill (SIGKILL; the reply carries the number of `stream` events in the store),
// start, config <toml lines separated by ';'>. For the staq side: receipt <base64> valid|invalid (the
// sandbox's verdict on it), staq_down (every purchase verification fails with 503), staq_up (the sandbox
// answers again; the reply comes once the daemon has recorded every verdict), staq_daemon_restart.
//
//   engine_bridge_test INGRESS CONFIGS STAQ_INGRESS STAQ_CONFIGS LAUNCH_INGRESS LAUNCH_CONFIGS LAUNCH_LOG DAEMON_ARGV...
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
  if (argc < 9) {
    std::cerr << "usage: engine_bridge_test INGRESS CONFIGS STAQ_INGRESS STAQ_CONFIGS LAUNCH_INGRESS LAUNCH_CONFIGS "
                 "LAUNCH_LOG DAEMON_ARGV...\n";
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
  Check(client.TrackAd(eb::AdAction::Show, eb::AdType::RewardedVideo, "admob", "end_of_level", 30000,
                        {{"ad_fb_error", "no_fill"}}).ok(), "TrackAd");
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
    Check(s.tracked == 8 && s.stored == 8 && s.acknowledged == 8 && s.in_flight == 0 && s.rejected == 0,
          "ack counts: 8 tracked, 8 stored, none rejected",
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
    Check(client.GetStats().tracked == tracked_before, "refused calls queue nothing",
          Num(client.GetStats().tracked - tracked_before) + " queued");
    // A NaN in an allowed place still never reaches the wire: 1 valid event after all of that is stored.
    const bool acked = WaitFor({&client}, [&] { return AllAcked(client); }, 10s);
    Check(acked && client.GetStats().rejected == 0, "the daemon rejected nothing", client.GetStats().last_rejection);
  }

  // --- daemon killed and restarted mid-stream -----------------------------------------------------------
  const int kStream = 2000;
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
  for (int n = 1500; n < kStream; ++n) {
    const auto t0 = Clock::now();
    client.TrackCustom("stream", {{"n", n}});
    worst_us = std::max(worst_us, std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
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
  for (int n = 150; n < 20150; ++n) {
    const auto t0 = Clock::now();
    small.TrackCustom("overflow", {{"n", n}});
    worst_us = std::max(worst_us, std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::cout << "worst Track call while the daemon was down: " << worst_us << " us" << std::endl;
  // A blocking call would wait for the network (seconds); scheduling noise on a busy machine stays far below.
  Check(worst_us < 50000, "Track never blocks while the daemon is down", std::to_string(worst_us) + " us");
  Check(small.GetStats().dropped == 20050, "drop count after 20150 events into 100 slots",
        Num(small.GetStats().dropped));

  Ask("start");
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
    eb::Settings launch = Endpoints(argv[5], argv[6]);
    launch.daemon.command.assign(argv + 8, argv + argc);
    launch.daemon.log_path = argv[7];
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
