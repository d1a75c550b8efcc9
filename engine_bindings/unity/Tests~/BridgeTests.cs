// The Unity binding's test program: runs under Mono against a real daemon that tests/bindings/test_unity.py
// started. Prints one line per check and ends with "N passed, N failed".
//
// The wrapper owns the daemon. When a check needs the daemon changed, this program prints "@@ <command>" and
// waits for the wrapper's "ok" on stdin. Commands: freeze (SIGSTOP), thaw (SIGCONT), kill (SIGKILL), stop (SIGTERM), start,
// config <name> (rewrite the config file with a preset and SIGHUP); and for the second daemon, which verifies
// purchases through the wrapper's staq sandbox: receipt <base64> (the sandbox calls it valid), staq down (its
// purchase route answers 503), staq up (faults cleared; "ok" once that daemon has verified every stored purchase).
// Two more daemons take no commands: one delivers to a GameAnalytics sandbox (--ga-*), one announces small limits in
// its welcome and enforces them (--limits-*). Lines "## key value" report facts the wrapper checks in the stores
// afterwards.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using EngineBridge;
using static Checks;

internal static class BridgeTests
{
    private const int StreamBefore = 5000;
    private const int StreamFrozen = 2000;
    private const int StreamDown = 3000;
    private const int StreamAfter = 2000;
    private const int FrozenTracked = 1000;
    private const int OverflowCapacity = 100;
    private const int OverflowTracked = 250;
    private const double BlockingBoundMs = 50;
    private const int RefusalBurst = 30;
    private const int OutageRate = 1000;
    private const int OutageMs = 6000;
    private const int ReconnectBoundMs = 1000;
    private const int LimitedEvents = 100;

    private static int mainThread;
    private static Dictionary<string, string> options;

    private static int Main(string[] args)
    {
        options = ParseOptions(args);
        mainThread = Thread.CurrentThread.ManagedThreadId;
        Run("settings are checked at the call site", SettingsChecks);
        Run("every helper round-trips", HelperChecks);
        Run("bad arguments", BadArgumentChecks);
        Run("no allocations on the hot path", AllocationChecks);
        Run("configs", ConfigChecks);
        Run("purchase verdicts", PurchaseChecks);
        Run("purchase verdicts after a restart", ReturningBuyerChecks);
        Run("a frozen daemon", FrozenDaemonChecks);
        Run("kill and restart mid-stream", KillRestartChecks);
        Run("queue overflow", OverflowChecks);
        Run("provider refusals", ProviderRefusalChecks);
        Run("connection state", ConnectionChecks);
        Run("an outage at 1,000 events/s", OutageChecks);
        Run("limits from welcome", LimitChecks);
        Run("daemon launcher", LauncherChecks);
        return Summary();
    }

    // ----- the checks ---------------------------------------------------------------------------------------

    private static void SettingsChecks()
    {
        Throws<ArgumentNullException>("game", () => BridgeClient.Connect(null));
        Throws<ArgumentNullException>("game.DeviceId", () => BridgeClient.Connect(Game(null)));
        Throws<ArgumentException>("game.DeviceId", () => BridgeClient.Connect(Game(new string('d', 129))));
        var noBuild = Game("dev");
        noBuild.GameBuild = "";
        Throws<ArgumentException>("game.GameBuild", () => BridgeClient.Connect(noBuild));
        var ipc = Options();
        ipc.IngressEndpoint = "udp://127.0.0.1:5555";   // tcp:// and ipc:// only
        Throws<ArgumentException>("settings.IngressEndpoint", () => BridgeClient.Connect(Game("dev"), ipc));
        var zero = Options();
        zero.QueueCapacity = 0;
        Throws<ArgumentOutOfRangeException>("settings.QueueCapacity", () => BridgeClient.Connect(Game("dev"), zero));
        var noProgram = Options();
        noProgram.Daemon = new DaemonLaunchSettings { Command = new[] { "" } };
        Throws<ArgumentException>("settings.Daemon.Command", () => BridgeClient.Connect(Game("dev"), noProgram));
    }

    private static void HelperChecks()
    {
        using (var client = Open("unity-helpers"))
        {
            Expect("connects and is welcomed", WaitFor(() => client.IsConnected, 15000), client.LastError);
            Expect("the state says so, with no error left", client.State == ConnectionState.Connected && client.LastError == null, client.LastError);
            Expect("two I/O threads run the connection", BindingThreads() >= 2, BindingThreads().ToString());
            Expect("welcome carries the daemon version", !string.IsNullOrEmpty(client.DaemonVersion), client.DaemonVersion);

            Reply started = null;
            int replyThread = 0;
            client.StartSession(r => { started = r; replyThread = Thread.CurrentThread.ManagedThreadId; });
            Expect("session_start replies with a session", WaitFor(() => started != null, 10000) && started.Ok
                   && started.Type == "session" && client.Session != null && client.Session.IsOpen, client.LastError);
            Expect("reply callbacks run on the pumping thread", replyThread == mainThread, "thread " + replyThread);
            string sessionId = client.Session != null ? client.Session.Id : null;
            Expect("the reply's session is the client's session", started != null && (string)started.Body["session_id"] == sessionId, sessionId);
            Report("session", sessionId);

            client.TrackDesign("ui:click:play");
            client.TrackDesign("level:boss", 2.5);
            client.TrackBusiness("USD", 99, "gems", "pack_small", "shop");
            client.TrackProgression(ProgressionStatus.Complete, "world01", "level01", score: 1200, attemptNum: 2);
            client.TrackResource(ResourceFlow.Sink, "gold", 150, "weapons", "sword");
            client.TrackError(ErrorSeverity.Critical, "NullReference in Player.Update \u00fcn\u00efc\u00f8d\u00e9 \U0001F3AE");
            client.TrackAd(AdAction.RewardReceived, AdType.RewardedVideo, "admob", "end_of_level", 15000);
            client.TrackAd(AdAction.FailedShow, AdType.AppOpen, "applovin_max", "launch", null, AdFailShowReason.UnableToPrecache);
            // 0.3's form (extra in sixth place) with the deprecated ad_fb_error: sent as ad_fail_show_reason.
            client.TrackAd(AdAction.FailedShow, AdType.Video, "admob", "end_of_level", 0,
                           new Dictionary<string, object> { { "ad_fb_error", "no_fill" }, { "custom_01", "vip" } });
            client.TrackImpression("max", "12.4.1", new Dictionary<string, object>
            {
                { "revenue", 0.0123 }, { "currency", "USD" }, { "precision", "exact" }, { "network_name", "AppLovin" },
                { "ad_unit", new Dictionary<string, object> { { "id", "u-1" }, { "format", "REWARDED" } } }, { "deepest", Nest(2) },
            });
            client.Track(EventCategory.Impression, new Dictionary<string, object>
            {
                { "ad_network_name", "admob" }, { "ad_network_version", "23.0.0" },
                { "impression_data", new Dictionary<string, object> { { "value_micros", 1200L }, { "currency_code", "EUR" } } },
            });
            client.TrackCustom("tutorial_skipped");
            client.TrackCustom("boss_fight", new Dictionary<string, object>
            {
                { "step", 3 }, { "ratio", 0.5 }, { "tags", new[] { "a", "b" } },
                { "nested", new Dictionary<string, object> { { "k", true } } }, { "none", null },
            });
            client.Track(EventCategory.Business, new Dictionary<string, object>
            {
                { "event_id", "coins:starter" }, { "amount", 499L }, { "currency", "EUR" }, { "custom_01", "vip" },
                { "receipt_info", new Dictionary<string, object> { { "receipt", "r-1" }, { "store", "apple" } } },
            });
            var replay = new EventOptions { Id = "replayed-event-1", UserId = "player-2", TimestampMs = 1700000000000L };
            var replayed = new Dictionary<string, object> { { "name", "replayed" } };
            client.Track(EventCategory.Custom, replayed, replay);
            client.Track(EventCategory.Custom, replayed, replay);
            const int tracked = 16;
            Expect("every event is acknowledged", WaitFor(() => client.GetStats().Acknowledged == tracked, 15000), Describe(client));
            var stats = client.GetStats();
            Expect("all stored, none rejected", stats.Stored == tracked - 1 && stats.Rejected == 0 && stats.Queued == 0, Describe(client));
            Expect("an event sent again with its id is a duplicate", stats.Duplicates == 1, Describe(client));

            Reply flushed = null;
            client.Flush(r => flushed = r);
            Expect("flush replies with the daemon's count", WaitFor(() => flushed != null, 10000) && flushed.Ok
                   && flushed.Type == "flushed" && flushed.Body["queued"] is long, flushed == null ? "none" : flushed.Type);

            PurchaseResult purchase = null;
            string purchaseId = client.VerifyPurchase(new Purchase { Store = PurchaseStore.Apple, Receipt = "bWlzc2luZw==", PriceUsd = 0.99 },
                                                      r => purchase = r);
            Expect("purchase verification calls back", WaitFor(() => purchase != null, 10000), client.LastError);
            Expect("without staq the purchase gets not_configured", purchase != null && !purchase.Ok
                   && purchase.ErrorCode == "not_configured" && !string.IsNullOrEmpty(purchase.Message)
                   && purchase.Id == purchaseId && !purchase.ShouldGrant, purchase == null ? "none" : purchase.ToString());
            Expect("a purchase id is generated unless given", purchaseId != null && purchaseId.Length == 36
                   && client.VerifyPurchase(new Purchase { Id = "order-42", Store = PurchaseStore.GooglePlay, Receipt = "ZGF0YQ==", Signature = "c2ln" }, r => { }) == "order-42",
                   purchaseId);

            Reply ended = null;
            client.EndSession(r => ended = r);
            Expect("session_end closes the session", WaitFor(() => ended != null, 10000) && ended.Ok
                   && client.Session != null && !client.Session.IsOpen && client.Session.Id == sessionId, client.LastError);
            Reply again = null;
            client.EndSession(r => again = r);
            Expect("a second session_end gets no_session", WaitFor(() => again != null, 10000) && !again.Ok
                   && again.ErrorCode == "no_session", again == null ? "none" : again.Type);
        }
    }

    private static void BadArgumentChecks()
    {
        using (var client = Open("unity-badargs"))
        {
            var fields = new Dictionary<string, object> { { "name", "x" } };
            var deep = new Dictionary<string, object> { { "a", Nest(5) } };
            Throws<ArgumentNullException>("eventId", () => client.TrackDesign(null));
            Throws<ArgumentException>("value", () => client.TrackDesign("a:b", double.NaN));
            Throws<ArgumentException>("eventId", () => client.TrackDesign("a::b"));
            Throws<ArgumentException>("eventId", () => client.TrackDesign("a:b:c:d:e:f"));
            Throws<ArgumentException>("eventId", () => client.TrackDesign(new string('x', 9000)));
            Throws<ArgumentException>("currency", () => client.TrackBusiness("usd", 1, "gems", "pack"));
            Throws<ArgumentNullException>("itemType", () => client.TrackBusiness("USD", 1, null, "pack"));
            Throws<ArgumentException>("itemType", () => client.TrackBusiness("USD", 1, "a:b", "pack"));
            Throws<ArgumentOutOfRangeException>("amountCents", () => client.TrackBusiness("USD", -1, "gems", "pack"));
            Throws<ArgumentException>("itemType", () => client.TrackBusiness("USD", 1, new string('t', 65), "pack"));
            Throws<ArgumentException>("itemId", () => client.TrackBusiness("USD", 1, "gems", new string('i', 65)));
            Throws<ArgumentException>("cartType", () => client.TrackBusiness("USD", 1, "gems", "pack", new string('c', 65)));
            Throws<ArgumentException>("eventId", () => client.TrackDesign("a:" + new string('x', 65)));
            Throws<ArgumentException>("progression02", () => client.TrackProgression(ProgressionStatus.Start, "w", new string('l', 65)));
            Throws<ArgumentException>("currency", () => client.TrackResource(ResourceFlow.Sink, new string('g', 65), 1, "a", "b"));
            Throws<ArgumentException>("fields", () => client.Track(EventCategory.Design, new Dictionary<string, object>
                                                                   { { "event_id", "a:" + new string('x', 65) } }));
            Throws<ArgumentException>("fields", () => client.Track(EventCategory.Progression, new Dictionary<string, object>
                                                                   { { "event_id", "Begin:w" } }));
            Throws<ArgumentNullException>("progression01", () => client.TrackProgression(ProgressionStatus.Start, null));
            Throws<ArgumentException>("progression03", () => client.TrackProgression(ProgressionStatus.Start, "w", null, "l"));
            Throws<ArgumentOutOfRangeException>("status", () => client.TrackProgression((ProgressionStatus)7, "w"));
            Throws<ArgumentException>("amount", () => client.TrackResource(ResourceFlow.Sink, "gold", double.PositiveInfinity, "a", "b"));
            Throws<ArgumentOutOfRangeException>("amount", () => client.TrackResource(ResourceFlow.Source, "gold", -5, "a", "b"));
            Throws<ArgumentNullException>("message", () => client.TrackError(ErrorSeverity.Error, null));
            Throws<ArgumentException>("message", () => client.TrackError(ErrorSeverity.Error, new string('m', 8193)));
            Throws<ArgumentException>("sdkName", () => client.TrackAd(AdAction.Show, AdType.Banner, "", "menu"));
            Throws<ArgumentException>("sdkName", () => client.TrackAd(AdAction.Show, AdType.Banner, new string('s', 65), "menu"));
            Throws<ArgumentException>("placement", () => client.TrackAd(AdAction.Show, AdType.Banner, "admob", ""));
            Throws<ArgumentException>("placement", () => client.TrackAd(AdAction.Show, AdType.Banner, "admob", new string('p', 65)));
            Throws<ArgumentOutOfRangeException>("durationMs", () => client.TrackAd(AdAction.Show, AdType.Banner, "admob", "menu", -1));
            Throws<ArgumentOutOfRangeException>("adType", () => client.TrackAd(AdAction.Show, (AdType)7, "admob", "menu"));
            Throws<ArgumentOutOfRangeException>("failShowReason", () => client.TrackAd(AdAction.FailedShow, AdType.Banner, "admob", "menu",
                                                                                       null, (AdFailShowReason)6));
            Throws<ArgumentException>("extra", () => client.TrackAd(AdAction.FailedShow, AdType.Banner, "admob", "menu",
                                                                    extra: new Dictionary<string, object> { { "ad_fail_show_reason", "no_fill" } }));
            Throws<ArgumentException>("extra", () => client.TrackAd(AdAction.FailedShow, AdType.Banner, "admob", "menu", null,
                                                                    new Dictionary<string, object> { { "ad_fb_error", "timeout" } }));
            Throws<ArgumentException>("extra", () => client.TrackAd(AdAction.FailedShow, AdType.Banner, "admob", "menu", null,
                                                                    new Dictionary<string, object> { { "ad_fb_error", 3 } }));
            Throws<ArgumentException>("extra", () => client.TrackAd(AdAction.FailedShow, AdType.Banner, "admob", "menu", null,
                                                                    AdFailShowReason.Offline,
                                                                    new Dictionary<string, object> { { "ad_fb_error", "offline" } }));
            var impression = new Dictionary<string, object> { { "revenue", 0.01 } };
            Throws<ArgumentException>("adNetworkName", () => client.TrackImpression("", "1.0", impression));
            Throws<ArgumentNullException>("adNetworkName", () => client.TrackImpression(null, "1.0", impression));
            Throws<ArgumentException>("adNetworkVersion", () => client.TrackImpression("max", new string('v', 65), impression));
            Throws<ArgumentNullException>("impressionData", () => client.TrackImpression("max", "1.0", null));
            Throws<ArgumentException>("impressionData", () => client.TrackImpression("max", "1.0",
                                                                                     new Dictionary<string, object> { { "revenue", double.NaN } }));
            // impression_data is the second level of nesting (fields the first): Nest(2) in it reaches the fourth, Nest(3) the fifth.
            Throws<ArgumentException>("impressionData", () => client.TrackImpression("max", "1.0",
                                                                                     new Dictionary<string, object> { { "a", Nest(3) } }));
            Throws<ArgumentException>("extra", () => client.TrackImpression("max", "1.0", impression,
                                                                            new Dictionary<string, object> { { "impression_data", 1 } }));
            Throws<ArgumentException>("fields", () => client.Track(EventCategory.Impression, new Dictionary<string, object>
                                                                   { { "ad_network_name", "max" }, { "ad_network_version", "1.0" } }));
            Throws<ArgumentException>("fields", () => client.Track(EventCategory.Impression, new Dictionary<string, object>
                                                                   { { "ad_network_name", "max" }, { "ad_network_version", "1.0" },
                                                                     { "impression_data", "{\"revenue\": 0.01}" } }));
            Throws<ArgumentException>("name", () => client.TrackCustom(new string('n', 65)));
            Throws<ArgumentException>("fields", () => client.TrackCustom("n", fields));
            Throws<ArgumentException>("fields", () => client.TrackCustom("n", deep));
            Throws<ArgumentException>("fields", () => client.TrackCustom("n", new Dictionary<string, object> { { "x", double.NaN } }));
            Throws<ArgumentException>("fields", () => client.TrackCustom("n", new Dictionary<string, object> { { "x", new object() } }));
            Throws<ArgumentException>("fields", () => client.Track(EventCategory.Business, new Dictionary<string, object>
                                                                   { { "event_id", "a:b" }, { "amount", 1 } }));
            Throws<ArgumentException>("fields", () => client.Track(EventCategory.Resource, new Dictionary<string, object>
                                                                   { { "event_id", "Source:a:b:c" }, { "amount", "five" } }));
            Throws<ArgumentException>("extra", () => client.TrackDesign("a:b", 1, new Dictionary<string, object> { { "event_id", "x" } }));
            Throws<ArgumentException>("options.Id", () => client.Track(EventCategory.Custom, fields, new EventOptions { Id = new string('i', 65) }));
            Throws<ArgumentException>("options.Id", () => client.Track(EventCategory.Custom, fields, new EventOptions { Id = "has space" }));
            Throws<ArgumentOutOfRangeException>("options.TimestampMs", () => client.Track(EventCategory.Custom, fields, new EventOptions { TimestampMs = -1 }));
            Throws<ArgumentNullException>("onChange", () => client.SubscribeConfigs(null));
            Throws<ArgumentNullException>("key", () => client.SubscribeConfig(null, (k, v) => { }));
            Throws<ArgumentNullException>("purchase", () => client.VerifyPurchase(null, r => { }));
            Throws<ArgumentNullException>("onResult", () => client.VerifyPurchase(new Purchase { Store = PurchaseStore.Apple, Receipt = "ZGF0YQ==" }, null));
            Throws<ArgumentNullException>("purchase.Signature", () => client.VerifyPurchase(
                new Purchase { Store = PurchaseStore.GooglePlay, Receipt = "data" }, r => { }));
            Throws<ArgumentException>("purchase.Signature", () => client.VerifyPurchase(
                new Purchase { Store = PurchaseStore.GooglePlay, Receipt = "data", Signature = "sig" }, r => { }));
            Throws<ArgumentException>("purchase.Receipt", () => client.VerifyPurchase(
                new Purchase { Store = PurchaseStore.Apple, Receipt = "{\"orderId\": \"GPA.1\"}" }, r => { }));
            Throws<ArgumentException>("purchase.Receipt", () => client.VerifyPurchase(
                new Purchase { Store = PurchaseStore.Apple, Receipt = "ab=c" }, r => { }));
            Throws<ArgumentOutOfRangeException>("purchase.Status", () => client.VerifyPurchase(
                new Purchase { Store = PurchaseStore.Apple, Receipt = "data", Status = (PurchaseStatus)2 }, r => { }));
            Throws<ArgumentException>("purchase.Comment", () => client.VerifyPurchase(
                new Purchase { Store = PurchaseStore.Apple, Receipt = "data", Comment = new string('c', 1025) }, r => { }));
            Throws<ArgumentException>("purchase.PriceUsd", () => client.VerifyPurchase(
                new Purchase { Store = PurchaseStore.Apple, Receipt = "data", PriceUsd = double.NaN }, r => { }));
            Throws<ArgumentOutOfRangeException>("purchase.PriceUsd", () => client.VerifyPurchase(
                new Purchase { Store = PurchaseStore.Apple, Receipt = "data", PriceUsd = -0.5 }, r => { }));
            Throws<ArgumentException>("purchase.Id", () => client.VerifyPurchase(
                new Purchase { Id = new string('p', 65), Store = PurchaseStore.Apple, Receipt = "data" }, r => { }));
            Expect("refused calls queue nothing", client.GetStats().Tracked == 0, Describe(client));

            client.TrackDesign("after:errors", 1);
            Expect("the client still works after refused calls", WaitFor(() => client.GetStats().Stored == 1, 15000), Describe(client));
        }
    }

    private static void AllocationChecks()
    {
        using (var client = Open("unity-allocations", Options(20000)))
        {
            var calls = new KeyValuePair<string, Action>[]
            {
                Call("TrackDesign", () => client.TrackDesign("ui:click:play", 1.5)),
                Call("TrackBusiness", () => client.TrackBusiness("USD", 99, "gems", "pack_small")),
                Call("TrackProgression", () => client.TrackProgression(ProgressionStatus.Complete, "w1", "l1", score: 5)),
                Call("TrackResource", () => client.TrackResource(ResourceFlow.Source, "gold", 10, "reward", "daily")),
                Call("TrackError", () => client.TrackError(ErrorSeverity.Warning, "low memory")),
                Call("TrackAd", () => client.TrackAd(AdAction.Show, AdType.Interstitial, "admob", "menu", 3000)),
                Call("TrackAd with a reason", () => client.TrackAd(AdAction.FailedShow, AdType.AppOpen, "admob", "launch", null,
                                                                   AdFailShowReason.NoFill)),
                Call("TrackCustom", () => client.TrackCustom("opened_shop")),
            };
            foreach (var call in calls)
            {
                for (int i = 0; i < 1000; i++) call.Value();   // JIT and first-use costs
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < 2000; i++) call.Value();
                long bytes = GC.GetAllocatedBytesForCurrentThread() - before;
                Expect(call.Key + " allocates nothing per call", bytes == 0, bytes + " bytes over 2000 calls");
            }
            long idleBefore = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 1000; i++) client.Pump();
            Expect("an idle Pump allocates nothing", GC.GetAllocatedBytesForCurrentThread() - idleBefore == 0, "");
        }
    }

    private static void ConfigChecks()
    {
        using (var client = Open("unity-configs"))
        {
            Expect("configs arrive without a subscription", WaitFor(() => client.Configs.Received, 15000), client.LastError);
            var snapshots = new List<ConfigSnapshot>();
            var difficulty = new List<object>();
            var speed = new List<object>();
            int configThread = 0;
            var subscription = client.SubscribeConfigs(c => { snapshots.Add(c); configThread = Thread.CurrentThread.ManagedThreadId; });
            client.SubscribeConfig("difficulty", (key, value) => difficulty.Add(value));
            client.SubscribeConfig("speed", (key, value) => speed.Add(value));
            Expect("a late subscriber gets the current snapshot", WaitFor(() => snapshots.Count >= 1, 5000), "");
            Expect("a late key subscriber gets the current value", WaitFor(() => difficulty.Count == 1, 5000)
                   && (string)difficulty[0] == "hard", difficulty.Count.ToString());
            Expect("a key no topic has is not called back", speed.Count == 0, speed.Count.ToString());
            var snapshot = snapshots.Count > 0 ? snapshots[0] : ConfigSnapshot.Empty;
            Expect("typed getters read the values", snapshot.GetString("difficulty", "?") == "hard"
                   && snapshot.GetInt("max_lives", -1) == 5 && client.GetLong("max_lives") == 5 && client.GetString("difficulty") == "hard",
                   snapshot.GetString("difficulty", "?") + " " + snapshot.GetInt("max_lives", -1));
            object raw;
            Expect("typed getters fall back to the default", client.GetString("missing", "dflt") == "dflt"
                   && client.GetBool("difficulty", true) && client.GetDouble("missing", 1.5) == 1.5
                   && !client.TryGetConfig("missing", out raw) && client.TryGetConfig("max_lives", out raw) && (long)raw == 5, "");
            Expect("config callbacks run on the pumping thread", configThread == mainThread, "thread " + configThread);
            long version = snapshot.TopicVersion("config/local");

            Ask("config update");
            Expect("an update reaches the snapshot callback", WaitFor(() => snapshots.Count >= 2 && snapshots[snapshots.Count - 1].GetString("difficulty", "") == "easy", 10000),
                   "callbacks: " + snapshots.Count);
            var updated = snapshots[snapshots.Count - 1];
            Expect("the update carries every value and the next version", updated.GetInt("max_lives", -1) == 7
                   && updated.GetDouble("speed", 0) == 2.5 && updated.GetBool("tutorial", false)
                   && updated.TopicVersion("config/local") == version + 1, "version " + updated.TopicVersion("config/local"));
            Expect("key subscribers get the new values", WaitFor(() => difficulty.Count == 2 && speed.Count == 1, 5000)
                   && (string)difficulty[1] == "easy" && (double)speed[0] == 2.5, difficulty.Count + " " + speed.Count);
            Expect("the client's getters follow", client.GetString("difficulty") == "easy" && client.GetInt("max_lives") == 7, "");

            subscription.Dispose();
            int before = snapshots.Count;
            var second = new List<ConfigSnapshot>();
            client.SubscribeConfigs(second.Add);
            Ask("config final");
            Expect("a second subscriber sees the next update", WaitFor(() => second.Count > 0 && second[second.Count - 1].GetString("difficulty", "") == "brutal", 10000),
                   "callbacks: " + second.Count);
            Expect("a removed key is reported as null", WaitFor(() => speed.Count == 2, 5000) && speed[1] == null, speed.Count.ToString());
            Expect("an unsubscribed callback is not called", snapshots.Count == before, snapshots.Count + " vs " + before);
        }
    }

    private static void PurchaseChecks()
    {
        string good = Receipt("unity-good"), bad = Receipt("unity-forged"), slow = Receipt("unity-while-staq-down"),
               staged = Receipt("unity-processing"), last = Receipt("unity-last");
        foreach (string valid in new[] { good, slow, staged, last }) Ask("receipt " + valid);
        var calls = new Outcomes();
        var unasked = new List<PurchaseResult>();
        var settings = StaqOptions();
        settings.RequestTimeoutMs = 1000;   // shorter than the 5 s the daemon may hold a purchase reply
        using (var client = Open("unity-buyer", settings))
        {
            client.PurchaseVerified += unasked.Add;
            Expect("purchase client connects to the staq daemon", WaitFor(() => client.IsConnected, 15000), client.LastError);

            string first = client.VerifyPurchase(new Purchase { Store = PurchaseStore.Apple, Receipt = good, PriceUsd = 0.99 }, calls.Add("first"));
            var verified = calls.Wait("first", 10000);
            Expect("a valid receipt is verified while connected", verified != null && verified.Ok && verified.IsValid
                   && !verified.IsDuplicate && verified.ShouldGrant && verified.Id == first && verified.Store == PurchaseStore.Apple
                   && !string.IsNullOrEmpty(verified.Reason), Show(verified));
            Expect("the verdict callback runs on the pumping thread", calls.ThreadOf("first") == mainThread, "thread " + calls.ThreadOf("first"));

            client.VerifyPurchase(new Purchase { Store = PurchaseStore.Apple, Receipt = good, PriceUsd = 0.99 }, calls.Add("replayed"));
            var replayed = calls.Wait("replayed", 10000);
            Expect("the same receipt in another purchase is a duplicate", replayed != null && replayed.Ok && replayed.IsValid
                   && replayed.IsDuplicate && !replayed.ShouldGrant, Show(replayed));

            client.VerifyPurchase(new Purchase { Store = PurchaseStore.Apple, Receipt = bad }, calls.Add("forged"));
            var forged = calls.Wait("forged", 10000);
            Expect("a receipt the store refuses is invalid", forged != null && forged.Ok && !forged.IsValid && !forged.ShouldGrant, Show(forged));

            client.VerifyPurchase(new Purchase { Id = first, Store = PurchaseStore.Apple, Receipt = good, PriceUsd = 0.99 }, calls.Add("resent"));
            var resent = calls.Wait("resent", 10000);
            Expect("verifying a purchase id again answers its verdict, not a duplicate", resent != null && resent.Id == first
                   && resent.IsValid && !resent.IsDuplicate, Show(resent));

            client.VerifyPurchase(new Purchase { Store = PurchaseStore.Apple, Receipt = staged, Status = PurchaseStatus.Processing }, calls.Add("processing"));
            client.VerifyPurchase(new Purchase { Store = PurchaseStore.Apple, Receipt = staged }, calls.Add("completed"));
            var processing = calls.Wait("processing", 10000);
            var completed = calls.Wait("completed", 10000);
            Expect("a processing purchase does not spend its receipt", processing != null && processing.ShouldGrant
                   && completed != null && completed.ShouldGrant, Show(processing) + " / " + Show(completed));

            Ask("staq down");
            long acknowledged = client.GetStats().Acknowledged;
            string pending = client.VerifyPurchase(new Purchase { Store = PurchaseStore.Apple, Receipt = slow, PriceUsd = 4.99 }, calls.Add("pending"));
            for (int i = 0; i < 100; i++) client.TrackDesign("purchase:waiting", i);
            Expect("events flow while a purchase waits for its verdict", WaitFor(() => client.GetStats().Acknowledged == acknowledged + 100, 3000)
                   && calls.Count("pending") == 0, Describe(client));
            Expect("no verdict while staq is down: the callback waits past the reply", !WaitFor(() => calls.Count("pending") > 0, 6500), Show(calls.First("pending")));
            Expect("a held purchase reply is not taken for a dead daemon", client.GetStats().Reconnects == 0, Describe(client));
            Ask("staq up");
            var late = calls.Wait("pending", 15000);
            Expect("the late verdict reaches the callback once staq is back", late != null && late.Id == pending && late.Ok
                   && late.ShouldGrant && late.VerifiedAtMs.HasValue && late.Store == PurchaseStore.Apple, Show(late));

            client.VerifyPurchase(new Purchase { Store = PurchaseStore.Apple, Receipt = last }, calls.Add("last"));
            Expect("a later purchase is verified too", calls.Wait("last", 10000) != null, "");
            PumpFor(1000);   // the topic repeats every verdict once more
            Expect("every callback ran exactly once", calls.AllOnce(), calls.Summary());
            Expect("this client's own purchases never reach PurchaseVerified", unasked.Count == 0, unasked.Count + " reported");
        }
    }

    private static void ReturningBuyerChecks()
    {
        string granted = Receipt("unity-granted-earlier"), orphaned = Receipt("unity-orphaned"), fresh = Receipt("unity-fresh");
        foreach (string valid in new[] { granted, orphaned, fresh }) Ask("receipt " + valid);
        var calls = new Outcomes();
        string grantedId, orphanId;
        using (var earlier = Open("unity-returning", StaqOptions()))
        {
            Expect("the first run connects", WaitFor(() => earlier.IsConnected, 15000), earlier.LastError);
            grantedId = earlier.VerifyPurchase(new Purchase { Store = PurchaseStore.Apple, Receipt = granted }, calls.Add("granted"));
            Expect("the first run has one purchase verified", calls.Wait("granted", 10000) != null, "");
            Ask("staq down");
            orphanId = earlier.VerifyPurchase(new Purchase { Store = PurchaseStore.Apple, Receipt = orphaned }, calls.Add("orphan"));
            Reply flushed = null;
            earlier.Flush(r => flushed = r);
            Expect("the first run quits with a purchase stored and unverified", WaitFor(() => flushed != null, 10000)
                   && calls.Count("orphan") == 0, Describe(earlier));
        }
        Ask("staq up");

        using (var next = Open("unity-returning", StaqOptions()))
        {
            var told = new List<PurchaseResult>();
            int toldThread = 0;
            Expect("the next run connects", WaitFor(() => next.IsConnected, 15000), next.LastError);
            PumpFor(1500);   // the daemon's last verdicts arrive while no handler is attached
            next.VerifyPurchase(new Purchase { Id = grantedId, Store = PurchaseStore.Apple, Receipt = granted }, calls.Add("granted again"));
            next.PurchaseVerified += r => { told.Add(r); toldThread = Thread.CurrentThread.ManagedThreadId; };
            Expect("PurchaseVerified reports the purchase the first run did not hear about", WaitFor(() => told.Exists(r => r.Id == orphanId), 10000),
                   told.Count + " reported");
            var orphan = told.Find(r => r.Id == orphanId);
            Expect("with its verdict", orphan != null && orphan.Ok && orphan.ShouldGrant && orphan.VerifiedAtMs.HasValue
                   && orphan.Store == PurchaseStore.Apple, Show(orphan));
            Expect("on the pumping thread", toldThread == mainThread, "thread " + toldThread);
            var again = calls.Wait("granted again", 10000);
            Expect("a purchase verified again gets its callback, not PurchaseVerified", again != null && again.Id == grantedId
                   && again.ShouldGrant && !told.Exists(r => r.Id == grantedId), Show(again));

            next.VerifyPurchase(new Purchase { Store = PurchaseStore.Apple, Receipt = fresh }, calls.Add("fresh"));
            Expect("a new purchase is verified by the next run", calls.Wait("fresh", 10000) != null, "");
            var second = new List<PurchaseResult>();
            next.PurchaseVerified += second.Add;
            PumpFor(1000);   // the topic repeats every verdict once more
            Expect("each purchase id is reported once, never twice", told.Count == 1 && second.Count == 0,
                   told.Count + " then " + second.Count + " reported");
            Expect("every callback ran exactly once, the first run's orphan never", calls.AllOnce("orphan") && calls.Count("orphan") == 0,
                   calls.Summary());
        }

        using (var third = Open("unity-returning", StaqOptions()))
        {
            var told = new List<string>();
            third.PurchaseVerified += r => told.Add(r.Id);
            Expect("a run that verifies nothing is told every recent verdict, granted earlier or not",
                   WaitFor(() => told.Count == 3, 10000) && told.Contains(grantedId) && told.Contains(orphanId), string.Join(",", told));
            PumpFor(1000);
            Expect("once each", told.Count == 3, string.Join(",", told));
        }
    }

    private static void FrozenDaemonChecks()
    {
        var settings = Options();
        settings.RequestTimeoutMs = 1000;
        using (var client = Open("unity-frozen", settings))
        {
            Expect("frozen-test client connects", WaitFor(() => client.IsConnected, 15000), client.LastError);
            Ask("freeze");
            for (int i = 0; i < FrozenTracked; i++) client.TrackDesign("frozen:tick", i);
            Expect("a silent daemon is given up after the request timeout", WaitFor(() => !client.IsConnected, 10000), Describe(client));
            Ask("thaw");
            Expect("everything is acknowledged once it answers again", WaitFor(() => client.GetStats().Queued == 0, 30000), Describe(client));
            var stats = client.GetStats();
            // Those out when the daemon froze are resent (how many were out depends on the machine's timing);
            // only a resend can be a duplicate.
            Expect("the timed-out events were resent", stats.Resent >= 1 && stats.Reconnects >= 1
                   && stats.Duplicates <= stats.Resent, Describe(client));
            Expect("each arrived once or as a duplicate", stats.Stored + stats.Duplicates == FrozenTracked && stats.Rejected == 0, Describe(client));
        }
    }

    private static void KillRestartChecks()
    {
        using (var client = Open("unity-stream", Options(100000)))
        {
            Expect("stream client connects", WaitFor(() => client.IsConnected, 15000), client.LastError);
            int next = 0;
            next = TrackStream(client, next, StreamBefore);
            Expect("the stream is being acknowledged", WaitFor(() => client.GetStats().Acknowledged >= 1000, 15000), Describe(client));

            Ask("freeze");
            next = TrackStream(client, next, StreamFrozen);
            Expect("events are in flight when the daemon dies", WaitFor(() => client.GetStats().InFlight > 0, 5000), Describe(client));
            long inFlight = client.GetStats().InFlight;
            Ask("kill");
            Expect("the client notices the daemon is gone", WaitFor(() => !client.IsConnected, 10000), Describe(client));

            double worst;
            next = TrackStream(client, next, StreamDown, out worst);
            Report("worst_track_ms_daemon_killed", worst.ToString("0.000"));
            Expect("Track never blocks while the daemon is down (worst " + worst.ToString("0.000") + " ms)", worst < BlockingBoundMs, "");

            Ask("start");
            next = TrackStream(client, next, StreamAfter);
            Expect("everything is acknowledged after the restart", WaitFor(() => client.GetStats().Queued == 0, 60000), Describe(client));
            var stats = client.GetStats();
            Expect("unacknowledged events were resent", stats.Resent >= inFlight && stats.Reconnects >= 1,
                   "resent " + stats.Resent + ", in flight at the kill " + inFlight);
            Expect("nothing dropped or rejected", stats.Dropped == 0 && stats.Rejected == 0, Describe(client));
            Expect("every event acknowledged once or as a duplicate", stats.Stored + stats.Duplicates == next
                   && stats.Tracked == next, Describe(client));
            Report("stream_events", next.ToString());
        }
    }

    private static void OverflowChecks()
    {
        Ask("stop");
        using (var client = Open("unity-overflow", Options(OverflowCapacity)))
        {
            double worst = 0;
            for (int i = 0; i < OverflowTracked; i++)
            {
                long start = Stopwatch.GetTimestamp();
                client.TrackDesign("overflow:tick", i);
                worst = Math.Max(worst, Elapsed(start));
            }
            Report("worst_track_ms_daemon_stopped", worst.ToString("0.000"));
            Expect("Track never blocks while the daemon is stopped (worst " + worst.ToString("0.000") + " ms)", worst < BlockingBoundMs, "");
            var stats = client.GetStats();
            Expect("a full queue drops the oldest and counts them", stats.Dropped == OverflowTracked - OverflowCapacity
                   && stats.Queued == OverflowCapacity, Describe(client));
            Ask("start");
            Expect("the kept events flow once the daemon is back", WaitFor(() => client.GetStats().Queued == 0, 30000), Describe(client));
            Expect("exactly the newest events were stored", client.GetStats().Stored == OverflowCapacity, Describe(client));
        }
        // Overflow while events are in flight to a frozen daemon: those are stored once it thaws, so only the events
        // pushed out before they were ever sent count as dropped.
        using (var client = Open("unity-overflow-live", Options(OverflowCapacity)))
        {
            Expect("live-overflow client connects", WaitFor(() => client.IsConnected, 15000), client.LastError);
            Ask("freeze");
            for (int i = 0; i < OverflowCapacity; i++) client.TrackDesign("overflow:live", i);
            Expect("events are in flight to the frozen daemon", WaitFor(() => client.GetStats().InFlight > 0, 5000), Describe(client));
            for (int i = OverflowCapacity; i < OverflowTracked * 2; i++) client.TrackDesign("overflow:live", i);
            Ask("thaw");
            Expect("everything kept is acknowledged after the thaw", WaitFor(() => client.GetStats().Queued == 0, 30000), Describe(client));
            var stats = client.GetStats();
            Expect("stored and dropped add up to tracked: nothing stored is counted dropped", stats.Stored + stats.Dropped == stats.Tracked
                   && stats.Stored > OverflowCapacity && stats.Rejected == 0, Describe(client));
            Report("overflow_live_stored", stats.Stored.ToString());
        }

        var shutdown = Open("unity-shutdown");
        WaitFor(() => shutdown.IsConnected, 15000);
        shutdown.Dispose();
        shutdown.TrackDesign("after:shutdown");
        Expect("Track after shutdown is ignored and counted", shutdown.GetStats().Dropped == 1 && shutdown.GetStats().Tracked == 0, Describe(shutdown));
    }

    private static void ProviderRefusalChecks()
    {
        var log = new LogLines();
        var settings = Options(10000, options["ga-ingress"], options["ga-publish"]);
        settings.Log = log.Write;
        settings.WarningIntervalMs = 500;
        var refused = new List<ProviderRefusal>();
        int refusedThread = 0;
        using (var client = Open("unity-refused", settings))
        {
            client.ProviderRefused += r => { refused.Add(r); refusedThread = Thread.CurrentThread.ManagedThreadId; };
            Expect("the client reaches the daemon that delivers to GameAnalytics", WaitFor(() => client.IsConnected, 15000), client.LastError);
            client.TrackDesign("ui:click:play");
            client.TrackDesign("ui:click#play");   // '#' is not a character GameAnalytics allows in an event id
            Expect("both events are stored", WaitFor(() => client.GetStats().Stored == 2, 15000), Describe(client));
            var first = WaitFor(() => refused.Count > 0, 5000) ? refused[0] : null;
            Expect("the game's callback gets the refused event with its provider and rule", first != null && refused.Count == 1
                   && first.Provider == "gameanalytics" && first.Rule.Contains("'click#play'") && first.EventId.Length == 36,
                   first == null ? "no callback" : first.ToString());
            Expect("on the pumping thread", refusedThread == mainThread, "thread " + refusedThread);
            string warning = first != null ? log.Find(BridgeLogLevel.Warning, first.EventId) : null;
            Expect("the console warns with the event id, the provider and the rule", warning != null
                   && warning.Contains("gameanalytics") && warning.Contains(first.Rule), log.ToString());
            Expect("written on the pumping thread", log.OnlyOn(mainThread), log.ToString());
            Expect("the stats count it", client.GetStats().ProviderRefusals == 1, Describe(client));
            if (first != null)
            {
                Report("refused_id", first.EventId);
                Report("refused_rule", first.Rule);
            }

            // A custom_01 of 33 characters: the shape check passes it (a string within max_string_chars), GameAnalytics
            // takes at most 32, as its SDKs do.
            var longDimension = new Dictionary<string, object> { { "custom_01", new string('d', 33) } };
            for (int i = 0; i < RefusalBurst; i++)
                client.TrackProgression(ProgressionStatus.Complete, "world01", "level" + i, attemptNum: 1, extra: longDimension);
            Expect("every refusal of a burst reaches the callback", WaitFor(() => refused.Count == 1 + RefusalBurst, 15000)
                   && refused[RefusalBurst].Rule.Contains("custom_01"), refused.Count + " refusals");
            Expect("and the stats", client.GetStats().ProviderRefusals == 1 + RefusalBurst, Describe(client));
            Expect("the console sums the burst up instead of repeating it", WaitFor(() => log.Find(BridgeLogLevel.Warning, "more events refused") != null, 5000)
                   && log.Count(BridgeLogLevel.Warning) <= 3, log.ToString());
        }
    }

    private static void ConnectionChecks()
    {
        using (var port = new ForeignPort())
        {
            var log = new LogLines();
            var states = new List<ConnectionState>();
            int stateThread = 0;
            var settings = Options(1000, port.Endpoint, "tcp://127.0.0.1:" + FreePort());
            settings.Log = log.Write;
            using (var client = Open("unity-foreign", settings))
            {
                client.ConnectionChanged += (state, reason) => { states.Add(state); stateThread = Thread.CurrentThread.ManagedThreadId; };
                Expect("a port that hangs up at once: the daemon cannot be reached, over many attempts",
                       WaitFor(() => port.Accepted >= 4 && client.State == ConnectionState.Unreachable, 10000), client.State + " " + port.Accepted);
                Expect("ConnectionChanged says so on the pumping thread", states.Contains(ConnectionState.Unreachable) && stateThread == mainThread,
                       string.Join(",", states));
                string warning = log.Find(BridgeLogLevel.Warning, port.Endpoint);
                Expect("the console says it once, with what to do", log.Count(BridgeLogLevel.Warning) == 1 && warning != null
                       && warning.Contains("engine-bridge run"), log.ToString());

                int before = port.Accepted;
                port.Greeting = Encoding.ASCII.GetBytes("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
                Expect("another program answering is the wrong program, over many attempts",
                       WaitFor(() => port.Accepted >= before + 4 && client.State == ConnectionState.WrongPeer, 10000), client.State + " " + port.Accepted);
                Expect("the console says it once, as an error", log.Count(BridgeLogLevel.Error) == 1
                       && log.Find(BridgeLogLevel.Error, "not in ZeroMQ's protocol") != null && log.Count(BridgeLogLevel.Warning) == 1, log.ToString());
                Expect("LastError names the endpoint", (client.LastError ?? "").Contains(port.Endpoint), client.LastError);
            }
        }

        var swappedLog = new LogLines();
        var swapped = Options(1000, options["publish"], options["ingress"]);
        swapped.Log = swappedLog.Write;
        using (var client = Open("unity-swapped", swapped))
        {
            Expect("swapped endpoints: each link meets the other's socket type, and says so",
                   WaitFor(() => swappedLog.Find(BridgeLogLevel.Error, "XPUB socket") != null && swappedLog.Find(BridgeLogLevel.Error, "ROUTER socket") != null, 10000)
                   && client.State == ConnectionState.WrongPeer, swappedLog.ToString());
        }
    }

    private static void OutageChecks()
    {
        var log = new LogLines();
        var states = new List<ConnectionState>();
        var settings = Options();   // the default queue of 10,000 events
        settings.Log = log.Write;
        using (var client = Open("unity-outage", settings))
        {
            client.ConnectionChanged += (state, reason) => states.Add(state);
            Expect("outage client connects", WaitFor(() => client.IsConnected, 15000), client.LastError);
            long backMs;
            using (var producer = new Producer(client, OutageRate))
            {
                WaitFor(() => producer.Tracked >= OutageRate / 2, 5000);
                Ask("stop");
                Expect("a stopped daemon is unreachable", WaitFor(() => client.State == ConnectionState.Unreachable, 5000)
                       && client.LastError != null, client.State.ToString());
                long atStop = producer.Tracked;
                WaitFor(() => producer.Tracked >= atStop + OutageRate * OutageMs / 1000, OutageMs * 2);
                // The daemon's own start-up, which takes the wrapper seconds on a loaded machine, is left out of the
                // outage: the game tracks 6 s of events while it is away, then whatever the reconnect delay adds.
                producer.Paused = true;
                Ask("start");
                producer.Paused = false;
                var back = Stopwatch.StartNew();
                WaitFor(() => client.IsConnected, 10000);
                backMs = back.ElapsedMilliseconds;
            }
            Report("reconnect_ms", backMs.ToString());
            Expect("the client is back within " + ReconnectBoundMs + " ms of the daemon", client.IsConnected && backMs < ReconnectBoundMs, backMs + " ms");
            // The configs link reconnects on its own, within its own retry delay.
            Expect("LastError is cleared once both links are back", WaitFor(() => client.LastError == null, 2000), client.LastError);
            Expect("ConnectionChanged followed: connected, lost, unreachable, connected again", states.Count >= 4
                   && states[0] == ConnectionState.Connected && states[1] == ConnectionState.Connecting && states.Contains(ConnectionState.Unreachable)
                   && states.FindAll(state => state == ConnectionState.Connected).Count == 2 && states[states.Count - 1] == ConnectionState.Connected,
                   string.Join(",", states));
            Expect("the console said it once, and that it is back", WaitFor(() => log.Find(BridgeLogLevel.Info, "welcomed") != null, 2000)
                   && log.Count(BridgeLogLevel.Warning) == 1, log.ToString());
            Expect("everything is acknowledged", WaitFor(() => client.GetStats().Queued == 0, 30000), Describe(client));
            var stats = client.GetStats();
            Expect("the default queue held the outage: nothing dropped", stats.Dropped == 0 && stats.Stored + stats.Duplicates == stats.Tracked,
                   Describe(client));
            Report("outage_events", stats.Tracked.ToString());
        }
    }

    private static void LimitChecks()
    {
        using (var client = Open("unity-limits", Options(1000, options["limits-ingress"], options["limits-publish"])))
        {
            Expect("the client reaches the daemon with small limits", WaitFor(() => client.IsConnected, 15000), client.LastError);
            // That daemon's welcome: max_fields 8, max_string_chars 100, max_event_id_chars 40, max_depth 2,
            // max_batch_events 10, max_message_bytes 8192.
            var text = new string('t', 100);
            Throws<ArgumentException>("fields", () => client.TrackCustom("n", Keys(8, text)));
            Throws<ArgumentException>("message", () => client.TrackError(ErrorSeverity.Error, text + "!"));
            Throws<ArgumentException>("options.Id", () => client.Track(EventCategory.Custom, new Dictionary<string, object> { { "name", "n" } },
                                                                       new EventOptions { Id = new string('i', 41) }));
            Throws<ArgumentException>("fields", () => client.TrackCustom("n", new Dictionary<string, object> { { "a", Nest(2) } }));
            var lists = new Dictionary<string, object>();
            foreach (var key in Keys(7, text).Keys) lists[key] = new[] { text, text, text, text, text, text, text, text };
            Throws<ArgumentException>("fields", () => client.TrackCustom("n", lists));   // over a quarter of 8192 bytes
            Expect("refused calls queue nothing", client.GetStats().Tracked == 0, Describe(client));
            for (int i = 0; i < LimitedEvents; i++) client.TrackCustom("n", Keys(7, text));
            Expect("events at the limits are stored, in batches that daemon takes", WaitFor(() => client.GetStats().Stored == LimitedEvents, 15000)
                   && client.GetStats().Rejected == 0, Describe(client));
        }
    }

    private static void LauncherChecks()
    {
        var alreadyRunning = Options();
        alreadyRunning.Daemon = new DaemonLaunchSettings { Command = new[] { "/bin/false" }, ProbeMs = 200 };
        using (var client = Open("unity-launch-existing", alreadyRunning))
        {
            Expect("with a daemon answering, the client connects", WaitFor(() => client.IsConnected, 15000), client.LastError);
            Thread.Sleep(600);
            Expect("and launches nothing", client.GetStats().DaemonPid == 0, Describe(client));
        }

        var missing = Options(1000, "tcp://127.0.0.1:" + FreePort(), "tcp://127.0.0.1:" + FreePort());
        missing.Daemon = new DaemonLaunchSettings { Command = new[] { "/nonexistent/engine-bridge", "run" }, ProbeMs = 100 };
        using (var client = Open("unity-launch-missing", missing))
        {
            Expect("a command that cannot start is reported, not thrown", WaitFor(() => (client.GetStats().LastRejection ?? "").Contains("daemon launch"), 5000),
                   Describe(client));
        }

        var dying = Options(1000, "tcp://127.0.0.1:" + FreePort(), "tcp://127.0.0.1:" + FreePort());
        dying.Daemon = new DaemonLaunchSettings { Command = new[] { "/bin/false" }, ProbeMs = 100 };
        using (var client = Open("unity-launch-dying", dying))
        {
            long first = 0;
            Expect("no daemon answering: the command is launched", WaitFor(() => (first = client.GetStats().DaemonPid) > 0, 5000), Describe(client));
            Expect("a launched daemon that dies is launched again", WaitFor(() => client.GetStats().DaemonPid != first, 5000), Describe(client));
        }

        string ingress = "tcp://127.0.0.1:" + FreePort();
        string publish = "tcp://127.0.0.1:" + FreePort();
        string logPath = Path.Combine(options["workdir"], "launched daemon.log");
        var launched = Options(1000, ingress, publish);
        launched.Daemon = new DaemonLaunchSettings
        {
            Command = new[]
            {
                options["python"], "-m", "bridge", "run", "--ingress", ingress, "--publish", publish,
                "--data-dir", Path.Combine(options["workdir"], "launched data"), "--config", options["launch-config"],
            },
            ProbeMs = 200,
            LogPath = logPath,
        };
        var real = Open("unity-launched", launched);
        WaitFor(() => Says(logPath, "engine-bridge ready"), 30000);
        var ready = Stopwatch.StartNew();
        Expect("the client reaches the daemon it launched", WaitFor(() => real.IsConnected, 30000), Describe(real));
        Expect("within " + ReconnectBoundMs + " ms of its being ready", ready.ElapsedMilliseconds < ReconnectBoundMs, ready.ElapsedMilliseconds + " ms");
        long pid = real.GetStats().DaemonPid;
        Expect("its pid is reported", pid > 0, Describe(real));
        real.TrackDesign("launched:hello", 1);
        Expect("the launched daemon acknowledges events", WaitFor(() => real.GetStats().Stored == 1, 15000), Describe(real));
        real.Shutdown();
        Expect("Shutdown stops the launched daemon", ProcessGone(pid) && !Listening(ingress), "pid " + pid);
        Expect("its output went to the log file", File.Exists(logPath) && File.ReadAllText(logPath).Contains("ready"), logPath);
    }

    // ----- helpers ------------------------------------------------------------------------------------------

    private static GameInfo Game(string deviceId)
    {
        return new GameInfo { GameBuild = "1.2.3", DeviceId = deviceId, EngineVersion = "mono-test", Platform = "Linux" };
    }

    private static BridgeSettings Options(int capacity = 10000, string ingress = null, string publish = null)
    {
        return new BridgeSettings
        {
            IngressEndpoint = ingress ?? options["ingress"],
            ConfigsEndpoint = publish ?? options["publish"],
            QueueCapacity = capacity,
        };
    }

    /// <summary>The second daemon's endpoints: the one that verifies purchases through the staq sandbox.</summary>
    private static BridgeSettings StaqOptions()
    {
        return Options(10000, options["staq-ingress"], options["staq-publish"]);
    }

    /// <summary>A receipt as a store gives it: standard base64.</summary>
    private static string Receipt(string text)
    {
        return Convert.ToBase64String(Encoding.UTF8.GetBytes(text));
    }

    private static string Show(PurchaseResult result)
    {
        return result == null ? "no callback" : result + " verified_at=" + result.VerifiedAtMs;
    }

    /// <summary>What each purchase callback received, by a name the check gives the call.</summary>
    private sealed class Outcomes
    {
        private readonly Dictionary<string, List<PurchaseResult>> results = new Dictionary<string, List<PurchaseResult>>();
        private readonly Dictionary<string, int> threads = new Dictionary<string, int>();

        /// <summary>A callback that records what it receives under <paramref name="call"/>.</summary>
        public Action<PurchaseResult> Add(string call)
        {
            var received = new List<PurchaseResult>();
            results.Add(call, received);
            return r =>
            {
                received.Add(r);
                threads[call] = Thread.CurrentThread.ManagedThreadId;
            };
        }

        public int Count(string call)
        {
            return results[call].Count;
        }

        public PurchaseResult First(string call)
        {
            return Count(call) > 0 ? results[call][0] : null;
        }

        /// <summary>The first result of the call, pumping until it comes or the time is up (then null).</summary>
        public PurchaseResult Wait(string call, int timeoutMs)
        {
            WaitFor(() => Count(call) > 0, timeoutMs);
            return First(call);
        }

        public int ThreadOf(string call)
        {
            int thread;
            return threads.TryGetValue(call, out thread) ? thread : 0;
        }

        /// <summary>True when every call but <paramref name="except"/> was called back exactly once.</summary>
        public bool AllOnce(string except = null)
        {
            foreach (var entry in results)
            {
                if (entry.Key != except && entry.Value.Count != 1) return false;
            }
            return true;
        }

        public string Summary()
        {
            var text = new StringBuilder();
            foreach (var entry in results) text.Append(entry.Key).Append('=').Append(entry.Value.Count).Append(' ');
            return text.ToString();
        }
    }

    /// <summary>Fields k0..k(n-1), each holding the text.</summary>
    private static Dictionary<string, object> Keys(int count, string text)
    {
        var fields = new Dictionary<string, object>();
        for (int i = 0; i < count; i++) fields["k" + i] = text;
        return fields;
    }

    /// <summary>What a client wrote to its log hook, for the checks; written and read on the pumping thread.</summary>
    private sealed class LogLines
    {
        private readonly List<KeyValuePair<BridgeLogLevel, string>> lines = new List<KeyValuePair<BridgeLogLevel, string>>();
        private readonly List<int> threads = new List<int>();

        public void Write(BridgeLogLevel level, string message)
        {
            lines.Add(new KeyValuePair<BridgeLogLevel, string>(level, message));
            threads.Add(Thread.CurrentThread.ManagedThreadId);
        }

        public int Count(BridgeLogLevel level)
        {
            return lines.FindAll(l => l.Key == level).Count;
        }

        /// <summary>The first message of the level that contains the text, or null.</summary>
        public string Find(BridgeLogLevel level, string text)
        {
            var line = lines.Find(l => l.Key == level && l.Value.Contains(text));
            return line.Value;
        }

        public bool OnlyOn(int thread)
        {
            return threads.TrueForAll(t => t == thread);
        }

        public override string ToString()
        {
            var text = new StringBuilder();
            foreach (var line in lines) text.Append("\n    ").Append(line.Key).Append(": ").Append(line.Value);
            return text.ToString();
        }
    }

    /// <summary>
    /// A loopback port held by a program that is not the daemon. It takes every connection and counts it, then
    /// hangs up at once, or first sends <see cref="Greeting"/> (a banner such as an SSH server's) when one is set.
    /// </summary>
    private sealed class ForeignPort : IDisposable
    {
        private readonly TcpListener listener = new TcpListener(IPAddress.Loopback, 0);
        private readonly Thread thread;
        private int accepted;

        public ForeignPort()
        {
            listener.Start();
            Endpoint = "tcp://127.0.0.1:" + ((IPEndPoint)listener.LocalEndpoint).Port;
            thread = new Thread(Serve) { IsBackground = true };
            thread.Start();
        }

        public string Endpoint { get; private set; }

        public volatile byte[] Greeting;

        public int Accepted { get { return Volatile.Read(ref accepted); } }

        public void Dispose()
        {
            listener.Stop();
            thread.Join(2000);
        }

        private void Serve()
        {
            while (true)
            {
                Socket socket;
                try
                {
                    socket = listener.AcceptSocket();
                }
                catch (SocketException)
                {
                    return;   // stopped
                }
                catch (ObjectDisposedException)
                {
                    return;
                }
                Interlocked.Increment(ref accepted);
                using (socket)
                {
                    var greeting = Greeting;
                    if (greeting == null) continue;
                    try
                    {
                        socket.Send(greeting);
                        // Read until the client hangs up: closing with its bytes unread would reset the connection,
                        // and the client might lose the banner.
                        socket.ReceiveTimeout = 5000;
                        var sink = new byte[256];
                        while (socket.Receive(sink) > 0)
                        {
                        }
                    }
                    catch (SocketException)
                    {
                        // The client hung up first.
                    }
                }
            }
        }
    }

    /// <summary>Tracks "outage:tick" events at a steady rate on a thread of its own, as a game's frames would.</summary>
    private sealed class Producer : IDisposable
    {
        private readonly BridgeClient client;
        private readonly int perSecond;
        private readonly Thread thread;
        private volatile bool stopping;
        private long tracked;

        /// <summary>While set, the producer's clock stands still: nothing is tracked, and nothing is owed afterwards.</summary>
        public volatile bool Paused;

        public Producer(BridgeClient client, int perSecond)
        {
            this.client = client;
            this.perSecond = perSecond;
            thread = new Thread(Run) { IsBackground = true };
            thread.Start();
        }

        public long Tracked { get { return Interlocked.Read(ref tracked); } }

        public void Dispose()
        {
            stopping = true;
            thread.Join();
        }

        private void Run()
        {
            var clock = new Stopwatch();
            while (!stopping)
            {
                if (Paused)
                {
                    clock.Stop();
                    Thread.Sleep(1);
                    continue;
                }
                clock.Start();
                long due = clock.ElapsedMilliseconds * perSecond / 1000;
                while (Tracked < due)
                {
                    client.TrackDesign("outage:tick", Tracked);
                    Interlocked.Increment(ref tracked);
                }
                Thread.Sleep(1);
            }
        }
    }

    private static int TrackStream(BridgeClient client, int first, int count)
    {
        double worst;
        return TrackStream(client, first, count, out worst);
    }

    /// <summary>Tracks "stream:tick" events valued first..first+count-1 in bursts; returns the next value.</summary>
    private static int TrackStream(BridgeClient client, int first, int count, out double worstMs)
    {
        worstMs = 0;
        for (int i = first; i < first + count; i++)
        {
            long start = Stopwatch.GetTimestamp();
            client.TrackDesign("stream:tick", i);
            worstMs = Math.Max(worstMs, Elapsed(start));
            if (i % 500 == 499) Thread.Sleep(5);
        }
        return first + count;
    }

    private static double Elapsed(long start)
    {
        return (Stopwatch.GetTimestamp() - start) * 1000.0 / Stopwatch.Frequency;
    }

    /// <summary>Polls the condition while pumping callbacks on this (the "main") thread, as a game's Update would.</summary>
    private static bool WaitFor(Func<bool> condition, int timeoutMs)
    {
        var watch = Stopwatch.StartNew();
        while (watch.ElapsedMilliseconds < timeoutMs)
        {
            foreach (var client in Pumped) client.Pump();
            if (condition()) return true;
            Thread.Sleep(10);
        }
        return condition();
    }

    private static readonly List<BridgeClient> Pumped = new List<BridgeClient>();

    /// <summary>Pumps callbacks for a while, as a game's frames would.</summary>
    private static void PumpFor(int ms)
    {
        WaitFor(() => false, ms);
    }

    /// <summary>A client whose callbacks <see cref="WaitFor"/> pumps.</summary>
    private static BridgeClient Open(string deviceId, BridgeSettings settings = null)
    {
        var client = BridgeClient.Connect(Game(deviceId), settings ?? Options());
        Pumped.Add(client);
        return client;
    }

    /// <summary>Whether a file another process is still writing holds the text.</summary>
    private static bool Says(string path, string text)
    {
        if (!File.Exists(path)) return false;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        using (var reader = new StreamReader(stream)) return reader.ReadToEnd().Contains(text);
    }

    private static bool ProcessGone(long pid)
    {
        try
        {
            using (var process = Process.GetProcessById((int)pid)) return process.HasExited;
        }
        catch (ArgumentException)
        {
            return true;
        }
    }

    private static bool Listening(string endpoint)
    {
        var uri = new Uri(endpoint);
        try
        {
            using (var probe = new TcpClient()) probe.Connect(uri.Host, uri.Port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static KeyValuePair<string, Action> Call(string name, Action call)
    {
        return new KeyValuePair<string, Action>(name, call);
    }

    private static object Nest(int depth)
    {
        object value = 1;
        for (int i = 0; i < depth; i++) value = new Dictionary<string, object> { { "k", value } };
        return value;
    }

    /// <summary>Asks the wrapper to change the daemon and waits for its "ok".</summary>
    private static void Ask(string command)
    {
        Console.WriteLine("@@ " + command);
        Console.Out.Flush();
        string answer = Console.ReadLine();
        if (answer != "ok") throw new InvalidOperationException("the wrapper answered \"" + answer + "\" to " + command);
    }

    private static void Report(string key, string value)
    {
        Console.WriteLine("## " + key + " " + value);
    }

    private static string Describe(BridgeClient client)
    {
        var s = client.GetStats();
        return "tracked=" + s.Tracked + " queued=" + s.Queued + " inflight=" + s.InFlight + " acked=" + s.Acknowledged
               + " stored=" + s.Stored + " dup=" + s.Duplicates + " rejected=" + s.Rejected + " dropped=" + s.Dropped
               + " resent=" + s.Resent + " reconnects=" + s.Reconnects + " connected=" + s.Connected + " pid=" + s.DaemonPid
               + " rejection=" + s.LastRejection + " last=" + client.LastError;
    }

    private static Dictionary<string, string> ParseOptions(string[] args)
    {
        var parsed = new Dictionary<string, string>();
        for (int i = 0; i + 1 < args.Length; i += 2) parsed[args[i].TrimStart('-')] = args[i + 1];
        foreach (string required in new[] { "ingress", "publish", "staq-ingress", "staq-publish", "ga-ingress", "ga-publish",
                                            "limits-ingress", "limits-publish", "python", "repo", "workdir", "launch-config" })
        {
            if (!parsed.ContainsKey(required)) throw new ArgumentException("missing --" + required);
        }
        return parsed;
    }
}
