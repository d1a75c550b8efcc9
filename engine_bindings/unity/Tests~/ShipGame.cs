// A game shipped with the bundled daemon, as tests/bindings/shipping.py drives every binding's (the C++ and
// Godot ones do the same steps and print the same lines).
//
//   mono ShipGame.exe play|quit GAME DAEMON COUNT     DAEMON relative to this program's folder
//   mono ShipGame.exe missing GAME DAEMON               DAEMON missing, or not executable
//   mono ShipGame.exe wrong GAME INGRESS CONFIGS COUNT  another game's daemon, until this game's takes over
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using EngineBridge;

public static class ShipGame
{
    private static bool WaitFor(BridgeClient client, Func<BridgeStats, bool> done)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < 60)
        {
            client.Pump();
            if (done(client.GetStats())) return true;
            Thread.Sleep(16);   // a frame
        }
        return false;
    }

    private static void Track(BridgeClient client, int from, int count)
    {
        for (int n = from; n < from + count; n++) client.TrackCustom("ship", new Dictionary<string, object> { { "n", n } });
    }

    public static int Main(string[] args)
    {
        string mode = args[0];
        var settings = new BridgeSettings { Game = args[1] };
        if (mode == "wrong")
        {
            settings.IngressEndpoint = args[2];
            settings.ConfigsEndpoint = args[3];
        }
        else
        {
            // As EngineBridgeRunner finds it: in StreamingAssets (this install has none), else next to the program.
            string here = AppDomain.CurrentDomain.BaseDirectory;
            string streamingAssets = System.IO.Path.Combine(here, "ShipGame_Data/StreamingAssets");
            settings.Daemon = new DaemonLaunchSettings
            {
                Executable = args[2],
                BaseDirectory = DaemonLaunchSettings.FindBaseDirectory(args[2], streamingAssets, here),
                ProbeMs = 300,
            };
        }
        var client = BridgeClient.Connect(new GameInfo { GameBuild = "1.0.0", DeviceId = "ship-unity-device" }, settings);
        if (mode == "missing")
        {
            bool failed = WaitFor(client, s => s.LastRejection != null && s.LastRejection.StartsWith("daemon launch:"));
            Console.WriteLine((failed ? "LAUNCH FAILED " : "NO FAILURE ") + client.GetStats().LastRejection);
            client.Shutdown(0);
            return failed ? 0 : 1;
        }
        if (mode == "wrong")
        {
            int queued = int.Parse(args[4]);
            Track(client, 0, queued);
            bool refused = WaitFor(client, s => client.LastError != null && client.LastError.Contains("wrong_game"));
            Console.WriteLine((refused ? "REFUSED " : "NOT REFUSED ") + client.LastError);
            Console.WriteLine("STORED " + client.GetStats().Stored);
            if (!refused) { client.Shutdown(0); return 1; }
            // The events stay queued; the test stops the other game's daemon and starts this game's own on the
            // same endpoints: asked again every few seconds, it gets them.
            bool taken = WaitFor(client, s => s.Stored == queued);
            Console.WriteLine((taken ? "TAKEN OVER STORED " : "NOT TAKEN OVER " + client.LastError + " stored ")
                              + client.GetStats().Stored);
            client.Shutdown();
            return taken ? 0 : 1;
        }
        int count = int.Parse(args[3]);
        Track(client, 0, count);
        if (!WaitFor(client, s => s.Stored == count)) return 1;
        long first = client.GetStats().DaemonPid;
        Console.WriteLine("ACKED " + count + " DAEMON " + first);
        if (first <= 0) { Console.WriteLine("NO DAEMON PID"); return 1; }  // never the whole process group
        Process.GetProcessById((int)first).Kill();   // the daemon dies under the game: it is launched again
        Track(client, count, count);
        if (!WaitFor(client, s => s.Stored == 2 * count && s.DaemonPid != first && s.DaemonPid != 0))
        {
            Console.WriteLine("NOT RELAUNCHED " + client.GetStats().LastRejection);
            return 1;
        }
        Console.WriteLine("RELAUNCHED " + 2 * count + " DAEMON " + client.GetStats().DaemonPid);
        if (mode == "quit")
        {
            client.Shutdown();
            Console.WriteLine("QUIT");
            return 0;
        }
        Console.WriteLine("PLAYING");
        while (true)
        {
            client.Pump();
            Thread.Sleep(16);
        }
    }
}
