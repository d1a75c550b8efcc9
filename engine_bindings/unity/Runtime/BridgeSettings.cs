using System;
using EngineBridge.Internal;

namespace EngineBridge
{
    /// <summary>How to reach the daemon and how much to keep while it is away; every value has a default.</summary>
    public sealed class BridgeSettings
    {
        public BridgeSettings()
        {
            QueueCapacity = 10000;
            MaxBatchEvents = 500;
            MaxInFlight = 4;
            RequestTimeoutMs = 10000;
            ShutdownGraceMs = 300;
            WarningIntervalMs = 10000;
        }

        /// <summary>
        /// The game's short id (1-32 of a-z 0-9 _ -), sent in <c>hello</c>: a daemon serving another game refuses
        /// this client (<see cref="ConnectionState.WrongPeer"/>), and endpoints left null are the game's own
        /// (protocol.md section 1: POSIX <c>ipc://</c> sockets in the user's runtime directory, Windows a loopback
        /// port pair derived from the id). Null: no game id, and <c>tcp://127.0.0.1:5555</c> and <c>:5556</c>.
        /// </summary>
        public string Game { get; set; }

        /// <summary>The daemon's ROUTER socket, <c>tcp://host:port</c> or <c>ipc://path</c>; null: the game's.</summary>
        public string IngressEndpoint { get; set; }

        /// <summary>The daemon's XPUB socket, <c>tcp://host:port</c> or <c>ipc://path</c>; null: the game's.</summary>
        public string ConfigsEndpoint { get; set; }

        /// <summary>The ingress endpoint in force: the one set, else the game's default.</summary>
        internal string Ingress { get { return IngressEndpoint ?? GameEndpoints.Defaults(Game)[0]; } }

        /// <summary>The configs endpoint in force: the one set, else the game's default.</summary>
        internal string Configs { get { return ConfigsEndpoint ?? GameEndpoints.Defaults(Game)[1]; } }

        /// <summary>
        /// Events held in memory while not yet acknowledged (1 to 1,000,000). When it is full the oldest event is
        /// dropped and counted in <see cref="BridgeStats.Dropped"/>. Each slot preallocates 256 bytes; a larger
        /// event grows its slot once. To lose nothing in an outage, hold what the game tracks meanwhile: events
        /// per second × (the outage + 1 s) (README, "Queue size").
        /// </summary>
        public int QueueCapacity { get; set; }

        /// <summary>Events per <c>events</c> message, at least 1; the daemon's <c>max_batch_events</c> also applies.</summary>
        public int MaxBatchEvents { get; set; }

        /// <summary>Requests sent and not yet answered, 1 to 64: more overlap the daemon's commits with the network.</summary>
        public int MaxInFlight { get; set; }

        /// <summary>A request without a reply after this long (ms, at least 100) makes the client reconnect and resend.</summary>
        public int RequestTimeoutMs { get; set; }

        /// <summary>How long <see cref="BridgeClient.Shutdown"/> keeps sending queued events by default (ms).</summary>
        public int ShutdownGraceMs { get; set; }

        /// <summary>Optional: start the daemon as a child process when none answers, and stop it with the game.</summary>
        public DaemonLaunchSettings Daemon { get; set; }

        /// <summary>
        /// Where the binding's messages for people go (the daemon cannot be reached, another program holds its port,
        /// a provider refuses an event), called on the thread that calls <see cref="BridgeClient.Pump"/>. Null, the
        /// default: the engine's console (Unity's Debug.Log, Debug.LogWarning, Debug.LogError; standard error elsewhere).
        /// </summary>
        public Action<BridgeLogLevel, string> Log { get; set; }

        /// <summary>
        /// At most one warning about provider refusals per this many ms in the log; the refusals in between are
        /// summed up in the next one (each still reaches <see cref="BridgeClient.ProviderRefused"/>).
        /// </summary>
        public int WarningIntervalMs { get; set; }

        internal void Validate()
        {
            if (Game != null && !GameEndpoints.Valid(Game))
            {
                throw new ArgumentException("settings.Game \"" + Game + "\" is not 1-32 characters of a-z 0-9 _ -, starting with a letter or digit", "settings.Game");
            }
            ZmtpEndpoint.Parse(Ingress, "settings.IngressEndpoint");
            ZmtpEndpoint.Parse(Configs, "settings.ConfigsEndpoint");
            InRange(QueueCapacity, 1, 1000000, "settings.QueueCapacity");
            InRange(MaxBatchEvents, 1, int.MaxValue, "settings.MaxBatchEvents");
            InRange(MaxInFlight, 1, 64, "settings.MaxInFlight");
            InRange(RequestTimeoutMs, 100, int.MaxValue, "settings.RequestTimeoutMs");
            InRange(ShutdownGraceMs, 0, int.MaxValue, "settings.ShutdownGraceMs");
            InRange(WarningIntervalMs, 0, int.MaxValue, "settings.WarningIntervalMs");
            if (Daemon != null) Daemon.Validate();
        }

        internal static void InRange(int value, int minimum, int maximum, string name)
        {
            if (value < minimum || value > maximum)
            {
                throw new ArgumentOutOfRangeException(name, value, name + " must be " + minimum + " to " + maximum);
            }
        }
    }

    /// <summary>
    /// Starting the daemon as a child process when none answers, and stopping it with the game. The client's I/O
    /// thread does it, so <see cref="BridgeClient.Connect"/> still returns at once.
    /// </summary>
    public sealed class DaemonLaunchSettings
    {
        public DaemonLaunchSettings()
        {
            ProbeMs = 1000;
            StopTimeoutMs = 3000;
        }

        /// <summary>
        /// The bundled daemon shipped with the game (<c>engine-bridge bundle</c>), e.g.
        /// <c>engine-bridge/engine-bridge</c> (<c>.exe</c> on Windows); a relative path is found in
        /// <see cref="BaseDirectory"/>. It runs as <c>EXECUTABLE run --ingress I --publish P --parent-pipe [--game G]
        /// ARGUMENTS</c>: the daemon stops when the game ends, however it ends (the game holds a pipe to its standard
        /// input). Null: <see cref="Command"/> decides.
        /// </summary>
        public string Executable { get; set; }

        /// <summary>More arguments after those, e.g. <c>{ "--config", path }</c>.</summary>
        public string[] Arguments { get; set; }

        /// <summary>Where a relative <see cref="Executable"/> is found; null: the game's folder (the runner: StreamingAssets).</summary>
        public string BaseDirectory { get; set; }

        /// <summary>
        /// Instead of <see cref="Executable"/>: the daemon's command line: the program, then its arguments, e.g.
        /// <c>{ "engine-bridge", "run", "--ingress", "tcp://127.0.0.1:5555" }</c>. Null or empty: never launch.
        /// </summary>
        public string[] Command { get; set; }

        /// <summary>How long to wait for a daemon to answer before starting ours (ms); also the first retry delay if ours dies.</summary>
        public int ProbeMs { get; set; }

        /// <summary>File that receives the daemon's output (appended); null: the game's own stdout and stderr.</summary>
        public string LogPath { get; set; }

        /// <summary>At shutdown, how long the daemon may take after SIGTERM before it is killed (ms).</summary>
        public int StopTimeoutMs { get; set; }

        internal bool Enabled { get { return Executable != null || (Command != null && Command.Length > 0); } }

        /// <summary>
        /// What <see cref="BaseDirectory"/> should be for <paramref name="executable"/>: the first of
        /// <paramref name="folders"/> that holds it (the runner: StreamingAssets, then the player executable's
        /// folder), else the first (where a failed launch then says it looked). Null folders are skipped.
        /// </summary>
        public static string FindBaseDirectory(string executable, params string[] folders)
        {
            string first = null;
            foreach (string folder in folders)
            {
                if (folder == null) continue;
                if (System.IO.File.Exists(System.IO.Path.Combine(folder, executable))) return folder;
                if (first == null) first = folder;
            }
            return first;
        }

        /// <summary>The command line to run: <see cref="Command"/>, or the bundled daemon's on these endpoints.</summary>
        internal string[] CommandFor(string ingress, string configs, string game)
        {
            if (Executable == null) return Command;
            string folder = BaseDirectory ?? AppDomain.CurrentDomain.BaseDirectory;
            var line = new System.Collections.Generic.List<string>
            {
                System.IO.Path.IsPathRooted(Executable) ? Executable : System.IO.Path.Combine(folder, Executable),
                "run", "--ingress", ingress, "--publish", configs, "--parent-pipe",
            };
            if (game != null) line.AddRange(new[] { "--game", game });
            if (Arguments != null) line.AddRange(Arguments);
            return line.ToArray();
        }

        internal void Validate()
        {
            if (Command != null)
            {
                for (int i = 0; i < Command.Length; i++)
                {
                    if (Command[i] == null) throw new ArgumentNullException("settings.Daemon.Command", "settings.Daemon.Command[" + i + "] is null");
                }
                if (Command.Length > 0 && Command[0].Length == 0) throw new ArgumentException("settings.Daemon.Command names no program", "settings.Daemon.Command");
            }
            BridgeSettings.InRange(ProbeMs, 0, int.MaxValue, "settings.Daemon.ProbeMs");
            BridgeSettings.InRange(StopTimeoutMs, 0, int.MaxValue, "settings.Daemon.StopTimeoutMs");
        }
    }
}
