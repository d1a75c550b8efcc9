namespace EngineBridge
{
    /// <summary>Options of the generic <see cref="BridgeClient.Track"/>: for dedicated servers and replayed events.</summary>
    public sealed class EventOptions
    {
        /// <summary>1 to 64 chars of A–Z a–z 0–9 - _ . : ; null: a fresh UUID v4. A fixed id makes a retry idempotent.</summary>
        public string Id;

        /// <summary>1 to 128 chars; null: the <c>hello</c> user. A dedicated server names the player here.</summary>
        public string UserId;

        /// <summary>Milliseconds since the Unix epoch, at least 0; null: now.</summary>
        public long? TimestampMs;
    }
}
