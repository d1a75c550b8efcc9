using System;
using System.Collections.Generic;
using System.Threading;

namespace EngineBridge.Internal
{
    /// <summary>
    /// Protocol v1 names and fixed sizes (protocol.md), each spelled once; the limits a daemon states in its
    /// <c>welcome</c> are in <see cref="Limits"/>. Keys and fixed values are kept msgpack-encoded so the Track calls
    /// copy them instead of encoding them again.
    /// </summary>
    internal static class Wire
    {
        public const int ProtocolVersion = 1;
        public const int MaxFieldNameChars = 64;
        public const int MaxCustomNameChars = 64;
        public const int MaxPartChars = 64;  // one part of a ':'-joined event id, an ad's SDK name or placement, a cart type
        public const int MaxReceiptChars = 65536;
        public const int MaxPurchaseCommentChars = 1024;

        /// <summary>How long the daemon may hold a <c>purchase</c> reply waiting for the verdict before it says <c>pending</c>.</summary>
        public const int PurchaseReplyWaitMs = 5000;

        // Request envelope and event envelope.
        public static readonly byte[] Type = MsgPackWriter.Encode("type");
        public static readonly byte[] Rid = MsgPackWriter.Encode("rid");
        public static readonly byte[] Events = MsgPackWriter.Encode("events");
        public static readonly byte[] Id = MsgPackWriter.Encode("id");
        public static readonly byte[] Category = MsgPackWriter.Encode("category");
        public static readonly byte[] Ts = MsgPackWriter.Encode("ts");
        public static readonly byte[] Fields = MsgPackWriter.Encode("fields");
        public static readonly byte[] UserId = MsgPackWriter.Encode("user_id");

        // Category fields (protocol.md section 5).
        public static readonly byte[] EventId = MsgPackWriter.Encode("event_id");
        public static readonly byte[] Value = MsgPackWriter.Encode("value");
        public static readonly byte[] Amount = MsgPackWriter.Encode("amount");
        public static readonly byte[] Currency = MsgPackWriter.Encode("currency");
        public static readonly byte[] CartType = MsgPackWriter.Encode("cart_type");
        public static readonly byte[] AttemptNum = MsgPackWriter.Encode("attempt_num");
        public static readonly byte[] Score = MsgPackWriter.Encode("score");
        public static readonly byte[] Severity = MsgPackWriter.Encode("severity");
        public static readonly byte[] Message = MsgPackWriter.Encode("message");
        public static readonly byte[] AdAction = MsgPackWriter.Encode("ad_action");
        public static readonly byte[] AdType = MsgPackWriter.Encode("ad_type");
        public static readonly byte[] AdSdkName = MsgPackWriter.Encode("ad_sdk_name");
        public static readonly byte[] AdPlacement = MsgPackWriter.Encode("ad_placement");
        public static readonly byte[] AdDuration = MsgPackWriter.Encode("ad_duration");
        public static readonly byte[] AdFailShowReason = MsgPackWriter.Encode("ad_fail_show_reason");
        /// <summary>Protocol v1's first name for <c>ad_fail_show_reason</c>, still taken in a <c>TrackAd</c>'s extra fields.</summary>
        public const string AdFbErrorField = "ad_fb_error";
        public static readonly byte[] AdNetworkName = MsgPackWriter.Encode("ad_network_name");
        public static readonly byte[] AdNetworkVersion = MsgPackWriter.Encode("ad_network_version");
        public static readonly byte[] ImpressionData = MsgPackWriter.Encode("impression_data");
        public const string NameField = "name";
        public static readonly byte[] Name = MsgPackWriter.Encode(NameField);

        // Request types without a typed builder of their own.
        public static readonly byte[] HelloType = MsgPackWriter.Encode("hello");
        public static readonly byte[] EventsType = MsgPackWriter.Encode("events");
        public static readonly byte[] SessionStartType = MsgPackWriter.Encode("session_start");
        public static readonly byte[] SessionEndType = MsgPackWriter.Encode("session_end");
        public static readonly byte[] FlushType = MsgPackWriter.Encode("flush");
        public static readonly byte[] PurchaseType = MsgPackWriter.Encode("purchase");
        public static readonly byte[] ConsentType = MsgPackWriter.Encode("consent");
        public static readonly byte[] ForgetType = MsgPackWriter.Encode("forget");

        /// <summary>The wire name of each category, indexed by <see cref="EventCategory"/>.</summary>
        public static readonly string[] CategoryNames =
            { "design", "business", "progression", "resource", "error", "ads", "custom", "impression" };

        public static readonly byte[][] CategoryBytes = EncodeAll(CategoryNames);

        public static readonly string[] ProgressionStatusNames = { "Start", "Fail", "Complete" };
        public static readonly string[] ResourceFlowNames = { "Source", "Sink" };
        public static readonly byte[][] SeverityBytes =
            EncodeAll(new[] { "debug", "info", "warning", "error", "critical" });
        public static readonly byte[][] AdActionBytes =
            EncodeAll(new[] { "clicked", "show", "failed_show", "reward_received", "request", "loaded" });
        public static readonly byte[][] AdTypeBytes =
            EncodeAll(new[] { "video", "rewarded_video", "playable", "interstitial", "offer_wall", "banner", "app_open" });
        public static readonly string[] AdFailShowReasonNames =
            { "unknown", "offline", "no_fill", "internal_error", "invalid_request", "unable_to_precache" };
        public static readonly byte[][] AdFailShowReasonBytes = EncodeAll(AdFailShowReasonNames);
        public static readonly string[] PurchaseStoreNames = { "apple", "googleplay" };
        public static readonly string[] PurchaseStatusNames = { "completed", "processing" };

        /// <summary>Starts a request map: its header (two more pairs than the caller's), <c>type</c> and <c>rid</c>.</summary>
        private static void WriteRequestHeader(MsgPackWriter writer, byte[] type, uint rid, int otherPairs)
        {
            writer.WriteMapHeader(otherPairs + 2);
            writer.WriteRaw(Type);
            writer.WriteRaw(type);
            writer.WriteRaw(Rid);
            writer.WriteUInt(rid);
        }

        /// <summary>A whole request: <c>type</c>, <c>rid</c>, then its other pairs, already encoded.</summary>
        public static void WriteRequest(MsgPackWriter writer, byte[] type, uint rid, byte[] pairs, int pairCount)
        {
            WriteRequestHeader(writer, type, rid, pairCount);
            if (pairs != null) writer.WriteRaw(pairs);
        }

        /// <summary>An <c>events</c> request holding the queued events reserved from <paramref name="first"/>.</summary>
        public static void WriteEventsRequest(MsgPackWriter writer, uint rid, EventQueue queue, long first, int count)
        {
            WriteRequestHeader(writer, EventsType, rid, 1);
            writer.WriteRaw(Events);
            writer.WriteArrayHeader(count);
            queue.CopyBatch(first, count, writer);
        }

        /// <summary>Writes one key/value pair of a request unless the value is null, counting what it wrote.</summary>
        public static void Pair(MsgPackWriter writer, string key, object value, ref int pairCount)
        {
            if (value == null) return;
            writer.WriteString(key);
            writer.WriteValue(value);
            pairCount++;
        }

        /// <summary>Milliseconds since the Unix epoch, the protocol's clock, without allocating.</summary>
        public static long NowMs()
        {
            return (DateTime.UtcNow.Ticks - UnixEpochTicks) / TimeSpan.TicksPerMillisecond;
        }

        private const long UnixEpochTicks = 621355968000000000L;

        private static byte[][] EncodeAll(string[] names)
        {
            var encoded = new byte[names.Length][];
            for (int i = 0; i < names.Length; i++) encoded[i] = MsgPackWriter.Encode(names[i]);
            return encoded;
        }
    }

    /// <summary>A decoded reply (or a failure made up on this side), with the accessors the links need.</summary>
    internal sealed class WireReply
    {
        public readonly Dictionary<string, object> Map;
        public readonly string Type;
        public readonly string ErrorCode;
        public readonly string ErrorMessage;

        public WireReply(Dictionary<string, object> map)
        {
            Map = map;
            Type = GetString("type");
            if (Type == "error")
            {
                ErrorCode = GetString("code") ?? "internal";
                ErrorMessage = GetString("message") ?? "";
            }
        }

        private WireReply(string code, string message)
        {
            Map = new Dictionary<string, object>();
            Type = "error";
            ErrorCode = code;
            ErrorMessage = message;
        }

        /// <summary>A failure decided on this side (e.g. a request dropped), shaped like the daemon's errors.</summary>
        public static WireReply Failure(string code, string message)
        {
            return new WireReply(code, message);
        }

        public bool IsError { get { return ErrorCode != null; } }

        /// <summary>The request id, or -1 when absent or nil.</summary>
        public long Rid { get { return GetLong("rid", -1); } }

        public string GetString(string key)
        {
            object value;
            return Map.TryGetValue(key, out value) ? value as string : null;
        }

        public long GetLong(string key, long fallback)
        {
            object value;
            if (Map.TryGetValue(key, out value) && value is long) return (long)value;
            return fallback;
        }

        public Dictionary<string, object> GetMap(string key)
        {
            object value;
            return Map.TryGetValue(key, out value) ? value as Dictionary<string, object> : null;
        }

        /// <summary>The boolean value of a key, or null when absent, nil or not a boolean.</summary>
        public bool? GetBool(string key)
        {
            object value;
            if (Map.TryGetValue(key, out value) && value is bool) return (bool)value;
            return null;
        }

        public object[] GetArray(string key)
        {
            object value;
            return Map.TryGetValue(key, out value) ? value as object[] : null;
        }

        /// <summary>Transient failures: nothing was done and the same request may succeed later.</summary>
        public bool IsTransient
        {
            get { return ErrorCode == "unavailable" || ErrorCode == "internal"; }
        }
    }

    /// <summary>
    /// A request other than events (session, flush, purchase), encoded once when the game asks for it and
    /// sent, or resent after a reconnect, by the I/O thread with a fresh <c>rid</c>.
    /// </summary>
    internal sealed class ControlRequest
    {
        public readonly byte[] Type;
        public readonly byte[] Pairs;
        public readonly int PairCount;

        /// <summary>
        /// The daemon may hold the reply on purpose (a purchase waiting for its verdict): once sent, the requests
        /// after it do not wait for its reply, and it times out <see cref="Wire.PurchaseReplyWaitMs"/> later.
        /// </summary>
        public readonly bool HeldReply;
        private readonly Action<WireReply> onReply;

        /// <summary>Position in the event stream: it is sent once every event before it is acknowledged.</summary>
        public long AfterSequence;
        public bool InFlight;
        public uint Rid;
        public long SentAtMs;
        private int completed;

        /// <param name="type">the encoded request type</param>
        /// <param name="pairs">the request's other key/value pairs, encoded; null for none</param>
        /// <param name="pairCount">how many pairs <paramref name="pairs"/> holds</param>
        /// <param name="onReply">runs on the I/O thread with the reply, or with a failure if it is dropped</param>
        /// <param name="heldReply">see <see cref="HeldReply"/></param>
        public ControlRequest(byte[] type, byte[] pairs, int pairCount, Action<WireReply> onReply, bool heldReply = false)
        {
            Type = type;
            Pairs = pairs;
            PairCount = pairCount;
            this.onReply = onReply;
            HeldReply = heldReply;
        }

        /// <summary>Hands over the reply; only the first of Complete and Fail counts (an eviction may race a reply).</summary>
        public void Complete(WireReply reply)
        {
            if (Interlocked.Exchange(ref completed, 1) == 0) onReply(reply);
        }

        public void Fail(string code, string message)
        {
            Complete(WireReply.Failure(code, message));
        }
    }
}
