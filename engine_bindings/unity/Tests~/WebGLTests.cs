// The package built as for a WebGL player (tests/bindings/test_unity.py compiles Runtime/ with -define:UNITY_WEBGL):
// game code that names the API builds, every call returns at once and does nothing, callbacks that wait for an
// answer get one, and no thread or socket is made. Prints one line per check and ends with "N passed, N failed".
using System;
using System.Collections.Generic;
using EngineBridge;
using static Checks;

internal static class WebGLTests
{
    private static int Main()
    {
        Run("a WebGL build", WebGLChecks);
        return Summary();
    }

    private static void WebGLChecks()
    {
        var logged = new List<string>();
        var settings = new BridgeSettings
        {
            Log = (level, message) => logged.Add(level + ": " + message),
            Daemon = new DaemonLaunchSettings { Command = new[] { "/bin/false" }, ProbeMs = 0 },
        };
        var client = BridgeClient.Connect(new GameInfo { GameBuild = "1.0.0", DeviceId = "webgl-player", Platform = "webgl" }, settings);
        Expect("Connect returns a client that says it cannot run here", client.State == ConnectionState.Unsupported && !client.IsConnected,
               client.State.ToString());
        Expect("no thread was started", BindingThreads() == 0, BindingThreads() + " threads");

        var states = new List<ConnectionState>();
        var refusals = new List<ProviderRefusal>();
        client.ConnectionChanged += (state, reason) => states.Add(state);
        client.ProviderRefused += refusals.Add;
        client.PurchaseVerified += result => { };
        client.TrackDesign("ui:click:play", 1);
        client.TrackBusiness("USD", 99, "gems", "pack_small");
        client.TrackProgression(ProgressionStatus.Start, "world01");
        client.TrackResource(ResourceFlow.Source, "gold", 10, "reward", "daily");
        client.TrackError(ErrorSeverity.Warning, "low memory");
        client.TrackAd(AdAction.Show, AdType.Banner, "admob", "menu");
        client.TrackCustom("opened_shop", new Dictionary<string, object> { { "step", 1 } });
        client.Track(EventCategory.Custom, new Dictionary<string, object> { { "name", "generic" } });
        Throws<ArgumentException>("eventId", () => client.TrackDesign("a::b"));   // the editor would have said so too
        var stats = client.GetStats();
        Expect("Track calls are ignored and counted as never sent", stats.Tracked == 0 && stats.Dropped == 8 && stats.Queued == 0,
               "tracked " + stats.Tracked + " dropped " + stats.Dropped);

        var replies = new List<Reply>();
        PurchaseResult purchase = null;
        client.StartSession(replies.Add);
        client.Flush(replies.Add);
        client.EndSession(replies.Add);
        string id = client.VerifyPurchase(new Purchase { Store = PurchaseStore.Apple, Receipt = "ZGF0YQ==" }, r => purchase = r);
        var snapshots = new List<ConfigSnapshot>();
        using (client.SubscribeConfigs(snapshots.Add))
        using (client.SubscribeConfig("difficulty", (key, value) => { }))
        {
            client.Pump();
        }
        Expect("requests are answered unsupported_platform at the next pump", replies.Count == 3
               && replies.TrueForAll(r => !r.Ok && r.ErrorCode == "unsupported_platform"), replies.Count + " replies");
        Expect("and so is a purchase, whose callback runs once", purchase != null && !purchase.Ok && !purchase.ShouldGrant
               && purchase.ErrorCode == "unsupported_platform" && purchase.Id == id, purchase == null ? "no callback" : purchase.ToString());
        Expect("configs keep their fallbacks", !client.Configs.Received && client.GetInt("max_lives", 3) == 3 && snapshots.Count == 0, "");
        Expect("the log says once why nothing is sent", logged.Count == 1 && logged[0].StartsWith("Warning: WebGL", StringComparison.Ordinal),
               string.Join(" | ", logged));
        Expect("no connection event, no refusal", states.Count == 0 && refusals.Count == 0, "");
        client.Shutdown();
        client.Dispose();
        Expect("shutting down is a no-op too", client.State == ConnectionState.Unsupported && BindingThreads() == 0, "");

        var plain = BridgeClient.Connect(new GameInfo { GameBuild = "1.0.0", DeviceId = "webgl-default-log" });
        plain.Pump();   // the warning goes to the engine's console: standard error outside Unity
        plain.Dispose();
    }
}
