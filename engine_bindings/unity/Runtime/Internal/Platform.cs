namespace EngineBridge.Internal
{
    /// <summary>What the platform the game was built for lets the client do.</summary>
    internal static class Platform
    {
        /// <summary>
        /// Why the client cannot run here, or null where it can. A WebGL build (not the editor, which has sockets)
        /// has neither threads nor TCP sockets: its clients do nothing, so game code that names the API still builds.
        /// </summary>
        public static readonly string Unsupported =
#if UNITY_WEBGL && !UNITY_EDITOR
            "WebGL has no threads and no TCP sockets: this build sends nothing, Track calls are ignored (counted in"
            + " GetStats().Dropped), requests are answered unsupported_platform and configs keep their fallbacks.";
#else
            null;
#endif
    }
}
