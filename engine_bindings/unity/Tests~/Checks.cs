// What the test programs share: their checks, each printed as one line, a closing "N passed, N failed", and the
// binding's I/O threads found by name (Mono gives a thread's name to the OS; Linux shows its first 15 bytes in
// /proc/self/task/<tid>/comm).
using System;
using System.IO;
using System.Net;
using System.Net.Sockets;

internal static class Checks
{
    private static int passed;
    private static int failed;

    /// <summary>A group of checks; an exception out of it is one more failure.</summary>
    public static void Run(string title, Action checks)
    {
        Console.WriteLine("# " + title);
        try
        {
            checks();
        }
        catch (Exception e)
        {
            Expect(title + " ran to the end", false, e.ToString());
        }
    }

    public static void Expect(string name, bool ok, string detail)
    {
        if (ok) passed++;
        else failed++;
        Console.WriteLine((ok ? "ok    " : "FAIL  ") + name + (ok || string.IsNullOrEmpty(detail) ? "" : "  -- " + detail));
    }

    /// <summary>The call throws exactly <typeparamref name="T"/>, naming <paramref name="parameter"/>.</summary>
    public static void Throws<T>(string parameter, Action call) where T : ArgumentException
    {
        string name = typeof(T).Name + " names " + parameter;
        try
        {
            call();
            Expect(name, false, "no exception");
        }
        catch (Exception e)
        {
            var argument = e as ArgumentException;
            Expect(name, e.GetType() == typeof(T) && argument.ParamName == parameter,
                   e.GetType().Name + " for " + (argument != null ? argument.ParamName : "?") + ": " + e.Message);
        }
    }

    /// <summary>Prints the closing line; the program's exit code.</summary>
    public static int Summary()
    {
        Console.WriteLine(passed + " passed, " + failed + " failed");
        return failed == 0 ? 0 : 1;
    }

    /// <summary>Threads of this process the binding named ("engine-bridge ingress", "engine-bridge configs").</summary>
    public static int BindingThreads()
    {
        int count = 0;
        foreach (string task in Directory.GetDirectories("/proc/self/task"))
        {
            if (File.ReadAllText(Path.Combine(task, "comm")).StartsWith("engine-bridge", StringComparison.Ordinal)) count++;
        }
        return count;
    }

    /// <summary>A loopback TCP port nobody listens on right now.</summary>
    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
