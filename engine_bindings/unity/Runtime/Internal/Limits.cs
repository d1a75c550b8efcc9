namespace EngineBridge.Internal
{
    /// <summary>
    /// The daemon's limits (protocol.md section 8) as its last <c>welcome</c> gave them, so that the call-site checks
    /// and the batches follow the daemon this client talks to. Until a welcome comes they are protocol v1's values.
    /// Written by the ingress thread, read by any thread: each value alone is current, which is all a check needs.
    /// </summary>
    internal sealed class Limits
    {
        private volatile int maxMessageBytes = 256 * 1024;
        private volatile int maxBatchEvents = 1000;
        private volatile int maxEventIdChars = 64;
        private volatile int maxFields = 64;
        private volatile int maxStringChars = 8192;
        private volatile int maxDepth = 4;

        public int MaxMessageBytes { get { return maxMessageBytes; } }

        public int MaxBatchEvents { get { return maxBatchEvents; } }

        public int MaxEventIdChars { get { return maxEventIdChars; } }

        public int MaxFields { get { return maxFields; } }

        public int MaxStringChars { get { return maxStringChars; } }

        public int MaxDepth { get { return maxDepth; } }

        /// <summary>The largest encoded event a Track call accepts: half a message, so that any one event fits a batch.</summary>
        public int MaxEventBytes { get { return maxMessageBytes / 2; } }

        /// <summary>The most a helper's extra fields may take: with the helper's own fields they stay under <see cref="MaxEventBytes"/>.</summary>
        public int MaxExtraBytes { get { return maxMessageBytes / 4; } }

        /// <summary>Takes the <c>limits</c> map of a <c>welcome</c>; a limit it leaves out or cannot state keeps its value.</summary>
        public void Apply(WireReply limits)
        {
            maxMessageBytes = Read(limits, "max_message_bytes", maxMessageBytes, 4096);
            maxBatchEvents = Read(limits, "max_batch_events", maxBatchEvents, 1);
            maxEventIdChars = Read(limits, "max_event_id_chars", maxEventIdChars, 1);
            maxFields = Read(limits, "max_fields", maxFields, 1);
            maxStringChars = Read(limits, "max_string_chars", maxStringChars, 1);
            maxDepth = Read(limits, "max_depth", maxDepth, 1);
        }

        private static int Read(WireReply limits, string key, int current, int minimum)
        {
            long value = limits.GetLong(key, current);
            return value < minimum || value > int.MaxValue ? current : (int)value;
        }
    }
}
