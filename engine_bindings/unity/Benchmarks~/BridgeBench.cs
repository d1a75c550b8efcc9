// The Unity binding's benchmark, run by benchmarks/bench_unity.py against a real daemon.
//
// 1. Track cost: every call timed on its own (Stopwatch ticks, 100 ns on Mono/Linux), median, p99 and mean per
//    helper, with the client connected and its I/O thread busy; allocations per call from
//    GC.GetAllocatedBytesForCurrentThread (Mono supports it) over the same calls.
// 2. Sustained rate: events tracked as fast as the queue allows without dropping, timed from the first Track to
//    the last ack.
// Prints "result <name> <key>=<value> ..." lines for the driver.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using EngineBridge;

internal static class BridgeBench
{
    private static int Main(string[] args)
    {
        var options = new Dictionary<string, string>();
        for (int i = 0; i + 1 < args.Length; i += 2) options[args[i].TrimStart('-')] = args[i + 1];
        int calls = int.Parse(options["calls"]);
        int events = int.Parse(options["events"]);

        using (var client = Connect(options, "bench-track", 20000))
        {
            if (client == null) return 1;
            var helpers = new KeyValuePair<string, Action>[]
            {
                Helper("baseline", () => { }),   // an empty call timed the same way: the timer's own cost
                Helper("TrackDesign", () => client.TrackDesign("level:complete:boss", 1.5)),
                Helper("TrackBusiness", () => client.TrackBusiness("USD", 99, "gems", "pack_small")),
                Helper("TrackProgression", () => client.TrackProgression(ProgressionStatus.Complete, "world01", "level01", score: 100)),
                Helper("TrackResource", () => client.TrackResource(ResourceFlow.Source, "gold", 50, "reward", "daily")),
                Helper("TrackError", () => client.TrackError(ErrorSeverity.Error, "NullReference in Player.Update")),
                Helper("TrackAd", () => client.TrackAd(AdAction.Show, AdType.RewardedVideo, "admob", "end_of_level", 3000)),
                Helper("TrackCustom", () => client.TrackCustom("tutorial_skipped")),
            };
            var ticks = new long[calls];
            foreach (var helper in helpers) MeasureTrack(helper.Key, helper.Value, ticks);
        }

        using (var client = Connect(options, "bench-sustained", 50000))
        {
            if (client == null) return 1;
            MeasureSustained(client, events, 50000);
        }
        return 0;
    }

    private static BridgeClient Connect(Dictionary<string, string> options, string deviceId, int capacity)
    {
        var client = BridgeClient.Connect(new GameInfo { GameBuild = "bench", DeviceId = deviceId }, new BridgeSettings
        {
            IngressEndpoint = options["ingress"],
            ConfigsEndpoint = options["publish"],
            QueueCapacity = capacity,
        });
        var watch = Stopwatch.StartNew();
        while (!client.IsConnected && watch.ElapsedMilliseconds < 15000) Thread.Sleep(10);
        if (client.IsConnected) return client;
        Console.WriteLine("cannot reach the daemon: " + client.LastError);
        client.Dispose();
        return null;
    }

    private static void MeasureTrack(string name, Action call, long[] ticks)
    {
        for (int i = 0; i < 20000; i++) call();   // JIT, first use of every queue slot
        GC.Collect();
        GC.WaitForPendingFinalizers();
        int collections = GC.CollectionCount(0);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        long begin = Stopwatch.GetTimestamp();
        for (int i = 0; i < ticks.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            call();
            ticks[i] = Stopwatch.GetTimestamp() - start;
        }
        long total = Stopwatch.GetTimestamp() - begin;
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        collections = GC.CollectionCount(0) - collections;
        Array.Sort(ticks);
        Console.WriteLine("result " + name
                          + " median_ns=" + Ns(ticks[ticks.Length / 2])
                          + " p99_ns=" + Ns(ticks[(int)(ticks.Length * 0.99)])
                          + " max_ns=" + Ns(ticks[ticks.Length - 1])
                          + " mean_ns=" + (Ns(total) / ticks.Length).ToString("0.0")
                          + " alloc_bytes_per_call=" + ((double)allocated / ticks.Length).ToString("0.000")
                          + " gen0_collections=" + collections
                          + " calls=" + ticks.Length);
    }

    private static void MeasureSustained(BridgeClient client, int events, int capacity)
    {
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < events; i++)
        {
            // Stay under the queue's capacity so nothing is dropped: this measures delivery, not dropping.
            if ((i & 255) == 0)
            {
                while (client.GetStats().Queued > capacity - 1024) Thread.Sleep(1);
            }
            client.TrackDesign("bench:sustained", i);
        }
        double trackedS = watch.Elapsed.TotalSeconds;
        while (client.GetStats().Queued > 0 && watch.ElapsedMilliseconds < 300000) Thread.Sleep(1);
        double seconds = watch.Elapsed.TotalSeconds;
        var stats = client.GetStats();
        Console.WriteLine("result sustained events=" + events
                          + " stored=" + stats.Stored
                          + " dropped=" + stats.Dropped
                          + " seconds=" + seconds.ToString("0.000")
                          + " tracking_seconds=" + trackedS.ToString("0.000")
                          + " events_per_s=" + (stats.Stored / seconds).ToString("0"));
    }

    private static KeyValuePair<string, Action> Helper(string name, Action call)
    {
        return new KeyValuePair<string, Action>(name, call);
    }

    private static double Ns(long ticks)
    {
        return ticks * 1e9 / Stopwatch.Frequency;
    }
}
