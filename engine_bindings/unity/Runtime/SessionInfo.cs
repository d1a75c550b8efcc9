using System.Collections.Generic;

namespace EngineBridge
{
    /// <summary>A play session as the daemon numbers it (the <c>session</c> reply of protocol.md 4.4).</summary>
    public sealed class SessionInfo
    {
        /// <summary>Lower-case UUID v4 the daemon stamps on the session's events.</summary>
        public readonly string Id;

        /// <summary>1 for the user's first session.</summary>
        public readonly long Number;

        public readonly string UserId;

        /// <summary>Milliseconds since the Unix epoch.</summary>
        public readonly long StartedAtMs;

        /// <summary>Null while the session is open.</summary>
        public readonly long? EndedAtMs;

        /// <summary>Seconds, once the session has ended.</summary>
        public readonly long? LengthSeconds;

        internal SessionInfo(Dictionary<string, object> map)
        {
            Id = map.ContainsKey("session_id") ? map["session_id"] as string : null;
            Number = ReadLong(map, "session_num") ?? 0;
            UserId = map.ContainsKey("user_id") ? map["user_id"] as string : null;
            StartedAtMs = ReadLong(map, "started_at") ?? 0;
            EndedAtMs = ReadLong(map, "ended_at");
            LengthSeconds = ReadLong(map, "length");
        }

        public bool IsOpen { get { return EndedAtMs == null; } }

        private static long? ReadLong(Dictionary<string, object> map, string key)
        {
            object value;
            if (map.TryGetValue(key, out value) && value is long) return (long)value;
            return null;
        }
    }
}
