// Unity glue: compiled by Unity only. Mono's mcs (the test build) skips it because UNITY_5_3_OR_NEWER is not
// defined there, so everything else in Runtime/ stays free of UnityEngine.
#if UNITY_5_3_OR_NEWER
using UnityEngine;

namespace EngineBridge.Unity
{
    /// <summary>
    /// Put one on a GameObject in the first scene: it connects the game's <see cref="BridgeClient"/> in Awake
    /// (optionally launching the daemon when none answers), pumps its callbacks on the main thread every frame,
    /// and on quit ends the session, flushes, shuts the client down and stops a daemon it launched.
    /// </summary>
    [DisallowMultipleComponent]
    public sealed class EngineBridgeRunner : MonoBehaviour
    {
        [Tooltip("The game's short id (1-32 of a-z 0-9 _ -), its daemon's --game: another game's daemon refuses this game, and empty endpoints are the game's own.")]
        public string game = "";

        [Tooltip("The daemon's ingress (ROUTER) endpoint; empty: the game's own (tcp://127.0.0.1:5555 without a game id).")]
        public string ingressEndpoint = "";

        [Tooltip("The daemon's configs (XPUB) endpoint; empty: the game's own (tcp://127.0.0.1:5556 without a game id).")]
        public string configsEndpoint = "";

        [Tooltip("Events kept in memory while the daemon is away: events per second × (the outage + 1 s) loses nothing; the oldest are dropped beyond this.")]
        public int queueCapacity = 10000;

        [Tooltip("Send session_start as soon as the client exists.")]
        public bool startSessionOnAwake = true;

        [Tooltip("Start the daemon as a child process when none answers, and stop it on quit.")]
        public bool launchDaemon;

        [Tooltip("The bundled daemon (engine-bridge bundle; .exe on Windows), relative to StreamingAssets, else to the player executable's folder; or a full path.")]
        public string daemonExecutable = "engine-bridge/engine-bridge";

        [Tooltip("Optional TOML configuration file for a launched daemon.")]
        public string daemonConfigFile = "";

        /// <summary>The game's client, from Awake of the first runner until quit.</summary>
        public static BridgeClient Client { get; private set; }

        private void Awake()
        {
            if (Client != null)
            {
                Destroy(gameObject);
                return;
            }
            DontDestroyOnLoad(gameObject);
            var settings = new BridgeSettings
            {
                Game = string.IsNullOrEmpty(game) ? null : game,
                IngressEndpoint = string.IsNullOrEmpty(ingressEndpoint) ? null : ingressEndpoint,
                ConfigsEndpoint = string.IsNullOrEmpty(configsEndpoint) ? null : configsEndpoint,
                QueueCapacity = queueCapacity,
            };
            if (launchDaemon)
            {
                // The bundled daemon, tied to the game by a pipe: it ends with the game, however the game ends.
                settings.Daemon = new DaemonLaunchSettings
                {
                    Executable = daemonExecutable,
                    BaseDirectory = DaemonLaunchSettings.FindBaseDirectory(daemonExecutable, Application.streamingAssetsPath, PlayerFolder()),
                    Arguments = string.IsNullOrEmpty(daemonConfigFile) ? null : new[] { "--config", daemonConfigFile },
                };
            }
            Client = BridgeClient.Connect(new GameInfo
            {
                GameBuild = Truncate(Application.version, 32, "0"),
                DeviceId = Truncate(SystemInfo.deviceUniqueIdentifier, 128, "unknown"),
                EngineVersion = Truncate(Application.unityVersion, 64, null),
                Platform = PlatformName(),
                OsVersion = Truncate(PlatformName() + " " + OsVersionNumber(), 64, null),
                Device = Truncate(SystemInfo.deviceModel, 64, null),
            }, settings);
            if (startSessionOnAwake) Client.StartSession();
        }

        private void Update()
        {
            if (Client != null) Client.Pump();
        }

        private void OnApplicationQuit()
        {
            if (Client == null) return;
            Client.EndSession();
            Client.Flush();
            Client.Shutdown();   // also stops a daemon it launched
            Client = null;
        }

        /// <summary>The folder of the player's executable (in the Editor, the Editor's).</summary>
        private static string PlayerFolder()
        {
            using (var self = System.Diagnostics.Process.GetCurrentProcess())
            {
                return System.IO.Path.GetDirectoryName(self.MainModule.FileName);
            }
        }

        /// <summary>The protocol's lower-case platform names.</summary>
        private static string PlatformName()
        {
            switch (Application.platform)
            {
                case RuntimePlatform.IPhonePlayer: return "ios";
                case RuntimePlatform.Android: return "android";
                case RuntimePlatform.WindowsPlayer:
                case RuntimePlatform.WindowsEditor: return "windows";
                case RuntimePlatform.OSXPlayer:
                case RuntimePlatform.OSXEditor: return "mac_osx";
                case RuntimePlatform.LinuxPlayer:
                case RuntimePlatform.LinuxEditor: return "linux";
                case RuntimePlatform.WebGLPlayer: return "webgl";
                case RuntimePlatform.PS4: return "ps4";
                case RuntimePlatform.XboxOne: return "xboxone";
                default: return Application.platform.ToString().ToLowerInvariant();
            }
        }

        /// <summary>The first word of SystemInfo.operatingSystem that starts with a digit, e.g. "10" of "Windows 10 (10.0.0) 64bit".</summary>
        private static string OsVersionNumber()
        {
            foreach (string word in SystemInfo.operatingSystem.Split(' '))
            {
                if (word.Length > 0 && char.IsDigit(word[0])) return word;
            }
            return "unknown";
        }

        private static string Truncate(string value, int maxChars, string fallback)
        {
            if (string.IsNullOrEmpty(value)) return fallback;
            return value.Length <= maxChars ? value : value.Substring(0, maxChars);
        }
    }
}
#endif
