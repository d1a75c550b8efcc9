using System;
using EngineBridge.Internal;

namespace EngineBridge
{
    /// <summary>
    /// Who the game is and how to reach the daemon; given once to <see cref="BridgeClient"/>, which checks every
    /// value and throws an ArgumentException naming the bad setting. GameBuild and DeviceId are required.
    /// </summary>
    public sealed class BridgeSettings
    {
        public BridgeSettings()
        {
            IngressEndpoint = "tcp://127.0.0.1:5555";
            ConfigsEndpoint = "tcp://127.0.0.1:5556";
            Engine = "unity";
            QueueCapacity = 10000;
            MaxBatchEvents = 500;
            MaxBatchesInFlight = 4;
            RequestTimeoutMs = 10000;
        }

        /// <summary>The daemon's ROUTER socket, <c>tcp://host:port</c>.</summary>
        public string IngressEndpoint { get; set; }

        /// <summary>The daemon's XPUB socket, <c>tcp://host:port</c>.</summary>
        public string ConfigsEndpoint { get; set; }

        /// <summary>The game's build, 1 to 32 chars (sent to providers as <c>build</c>).</summary>
        public string GameBuild { get; set; }

        /// <summary>Stable for this install of the game, 1 to 128 chars.</summary>
        public string DeviceId { get; set; }

        /// <summary>Optional, 1 to 128 chars; the daemon uses DeviceId when it is null.</summary>
        public string UserId { get; set; }

        /// <summary><c>unity</c> unless the binding runs elsewhere; 1 to 64 chars.</summary>
        public string Engine { get; set; }

        /// <summary>Optional, e.g. <c>2022.3.10f1</c>; at most 64 chars.</summary>
        public string EngineVersion { get; set; }

        /// <summary>Optional, e.g. <c>ios</c>, <c>android</c>, <c>windows</c>; at most 32 chars, sent in lower case.</summary>
        public string Platform { get; set; }

        /// <summary>Optional: platform name, a space, the version, e.g. <c>windows 10</c>; at most 64 chars.</summary>
        public string OsVersion { get; set; }

        /// <summary>Optional, e.g. <c>iPhone6.1</c>; at most 64 chars.</summary>
        public string Device { get; set; }

        /// <summary>Optional, e.g. <c>apple</c>; at most 64 chars.</summary>
        public string Manufacturer { get; set; }

        /// <summary>
        /// Events held in memory while not yet acknowledged (1 to 1,000,000). When it is full the oldest event is
        /// dropped and counted in <see cref="BridgeStats.Dropped"/>. Each slot preallocates 256 bytes.
        /// </summary>
        public int QueueCapacity { get; set; }

        /// <summary>Events per <c>events</c> message, 1 to 1000 (the daemon's own limit also applies).</summary>
        public int MaxBatchEvents { get; set; }

        /// <summary>Batches sent before the first of them is acknowledged, 1 to 64.</summary>
        public int MaxBatchesInFlight { get; set; }

        /// <summary>A request without a reply after this long (ms, at least 100) makes the client reconnect and resend.</summary>
        public int RequestTimeoutMs { get; set; }

        internal void Validate()
        {
            ZmtpEndpoint.Parse(IngressEndpoint, "IngressEndpoint");
            ZmtpEndpoint.Parse(ConfigsEndpoint, "ConfigsEndpoint");
            Check.Text(GameBuild, "GameBuild", 1, 32);
            Check.Text(DeviceId, "DeviceId", 1, 128);
            if (UserId != null) Check.Text(UserId, "UserId", 1, 128);
            Check.Text(Engine, "Engine", 1, 64);
            Check.OptionalText(EngineVersion, "EngineVersion", 64);
            Check.OptionalText(Platform, "Platform", 32);
            Check.OptionalText(OsVersion, "OsVersion", 64);
            Check.OptionalText(Device, "Device", 64);
            Check.OptionalText(Manufacturer, "Manufacturer", 64);
            InRange(QueueCapacity, 1, 1000000, "QueueCapacity");
            InRange(MaxBatchEvents, 1, Wire.MaxBatchEvents, "MaxBatchEvents");
            InRange(MaxBatchesInFlight, 1, 64, "MaxBatchesInFlight");
            InRange(RequestTimeoutMs, 100, int.MaxValue, "RequestTimeoutMs");
        }

        /// <summary>The fields of <c>hello</c> after <c>type</c> and <c>rid</c>, encoded once for every connection.</summary>
        internal byte[] EncodeHello(out int pairCount)
        {
            var writer = new MsgPackWriter(256);
            pairCount = 0;
            Wire.Pair(writer, "protocol", Wire.ProtocolVersion, ref pairCount);
            Wire.Pair(writer, "engine", Engine, ref pairCount);
            Wire.Pair(writer, "binding", BridgeClient.BindingName, ref pairCount);
            Wire.Pair(writer, "binding_version", BridgeClient.BindingVersion, ref pairCount);
            Wire.Pair(writer, "game_build", GameBuild, ref pairCount);
            Wire.Pair(writer, "device_id", DeviceId, ref pairCount);
            Wire.Pair(writer, "user_id", UserId, ref pairCount);
            Wire.Pair(writer, "engine_version", EngineVersion, ref pairCount);
            Wire.Pair(writer, "platform", Platform == null ? null : Platform.ToLowerInvariant(), ref pairCount);
            Wire.Pair(writer, "os_version", OsVersion, ref pairCount);
            Wire.Pair(writer, "device", Device, ref pairCount);
            Wire.Pair(writer, "manufacturer", Manufacturer, ref pairCount);
            return writer.ToArray();
        }

        private static void InRange(int value, int minimum, int maximum, string name)
        {
            if (value < minimum || value > maximum)
            {
                throw new ArgumentOutOfRangeException(name, value, name + " must be " + minimum + " to " + maximum);
            }
        }
    }
}
