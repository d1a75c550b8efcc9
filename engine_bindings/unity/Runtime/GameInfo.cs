using EngineBridge.Internal;

namespace EngineBridge
{
    /// <summary>
    /// Who is playing what: the <c>hello</c> the daemon gets after every (re)connect. GameBuild and DeviceId are
    /// required; <see cref="BridgeClient.Connect"/> checks every value and throws an ArgumentException naming the
    /// bad one.
    /// </summary>
    public sealed class GameInfo
    {
        public GameInfo()
        {
            Engine = "unity";
        }

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

        internal void Validate()
        {
            Check.Text(GameBuild, "game.GameBuild", 1, 32);
            Check.Text(DeviceId, "game.DeviceId", 1, 128);
            if (UserId != null) Check.Text(UserId, "game.UserId", 1, 128);
            Check.Text(Engine, "game.Engine", 1, 64);
            Check.OptionalText(EngineVersion, "game.EngineVersion", 64);
            Check.OptionalText(Platform, "game.Platform", 32);
            Check.OptionalText(OsVersion, "game.OsVersion", 64);
            Check.OptionalText(Device, "game.Device", 64);
            Check.OptionalText(Manufacturer, "game.Manufacturer", 64);
        }

        /// <summary>The fields of <c>hello</c> after <c>type</c> and <c>rid</c>, encoded once for every connection.</summary>
        internal byte[] EncodeHello(out int pairCount, string gameId)
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
            Wire.Pair(writer, "game", gameId, ref pairCount);
            return writer.ToArray();
        }
    }
}
