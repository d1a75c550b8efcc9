// A console "game" using the binding as a Unity game would, with a 60 Hz loop standing in for Update.
//
//   mcs -langversion:7.2 -out:ConsoleSample.exe -recurse:'Runtime/*.cs' Samples~/ConsoleSample/ConsoleSample.cs
//   mono ConsoleSample.exe [--ingress tcp://127.0.0.1:5555] [--publish tcp://127.0.0.1:5556]
//                          [--device console-sample] [--seconds 5] [--launch engine-bridge]
//
// Exits 0 once every event it tracked was acknowledged by the daemon.
using System;
using System.Collections.Generic;
using System.Threading;
using EngineBridge;

internal static class ConsoleSample
{
    private static int Main(string[] args)
    {
        var options = new Dictionary<string, string>
        {
            { "ingress", "tcp://127.0.0.1:5555" }, { "publish", "tcp://127.0.0.1:5556" },
            { "device", "console-sample" }, { "seconds", "5" },
        };
        for (int i = 0; i + 1 < args.Length; i += 2) options[args[i].TrimStart('-')] = args[i + 1];

        var settings = new BridgeSettings { IngressEndpoint = options["ingress"], ConfigsEndpoint = options["publish"] };
        if (options.ContainsKey("launch"))
        {
            // Start the daemon if none answers within a second; Shutdown() stops it again.
            settings.Daemon = new DaemonLaunchSettings
            {
                Command = new[] { options["launch"], "run", "--ingress", options["ingress"], "--publish", options["publish"] },
            };
        }
        var client = BridgeClient.Connect(new GameInfo { GameBuild = "0.1.0", DeviceId = options["device"], Platform = "linux" }, settings);
        // Runs on this thread, inside Pump(): at once if configs are already known, then at every change.
        client.SubscribeConfigs(configs =>
            Console.WriteLine("configs: difficulty = " + configs.GetString("difficulty", "normal")
                              + ", max_lives = " + configs.GetInt("max_lives", 3)));
        client.StartSession();
        client.TrackProgression(ProgressionStatus.Start, "world01", "level01");

        int frames = int.Parse(options["seconds"]) * 60;
        for (int frame = 0; frame < frames; frame++)
        {
            client.Pump();                                   // what Update() does in Unity
            if (frame % 60 == 0) client.TrackDesign("sample:second", frame / 60);
            if (frame % 90 == 0) client.TrackResource(ResourceFlow.Source, "gold", 10, "reward", "coin");
            Thread.Sleep(16);
        }

        client.TrackBusiness("USD", 199, "gems", "small_pack");
        client.TrackProgression(ProgressionStatus.Complete, "world01", "level01", score: 4200, attemptNum: 1);
        client.EndSession();
        client.Flush(reply => Console.WriteLine(reply.Ok ? "flushed: " + reply.Body["queued"] + " events not yet at the providers"
                                                          : "flush failed: " + reply.ErrorCode));
        client.Shutdown(2000);                                // waits for the acks, at most 2 s
        client.Pump();

        var stats = client.GetStats();
        Console.WriteLine("acknowledged " + stats.Acknowledged + " of " + stats.Tracked + " events"
                          + (client.LastError != null ? " (last problem: " + client.LastError + ")" : ""));
        return stats.Tracked > 0 && stats.Stored == stats.Tracked ? 0 : 1;
    }
}
