using System;
using System.Collections.Generic;
using System.Threading;
using EngineBridge.Internal;

namespace EngineBridge
{
    /// <summary>
    /// The game's connection to the engine-bridge daemon: one per game.
    ///
    /// Every call returns at once. Track calls check their arguments (an ArgumentException at the call site for a
    /// bad one), encode the event into a preallocated buffer and return: no allocation, no I/O, no waiting on
    /// the daemon. Two background threads do all the I/O: one sends events in acknowledged batches and resends
    /// what was not acknowledged after the daemon restarts; one receives config updates. Callbacks (configs,
    /// purchases, flush) run on the thread that calls <see cref="Pump"/>: in Unity, the main thread, every frame.
    /// </summary>
    public sealed class BridgeClient : IDisposable
    {
        /// <summary>The binding's name, sent in <c>hello</c>.</summary>
        public const string BindingName = "engine-bridge-unity";

        /// <summary>The binding's version, sent in <c>hello</c>; matches package.json.</summary>
        public const string BindingVersion = "0.1.0";

        /// <summary>How long <see cref="Dispose"/> waits for queued events to be acknowledged.</summary>
        public const int DefaultDrainTimeoutMs = 500;

        private const int StopTimeoutMs = 1000;

        private readonly EventQueue queue;
        private readonly CallbackQueue callbacks = new CallbackQueue();
        private readonly ConfigStore configs;
        private readonly IngressLink ingress;
        private readonly ConfigLink configLink;
        private volatile bool shutDown;

        /// <summary>Checks the settings (ArgumentException naming the bad one), then connects in the background.</summary>
        public BridgeClient(BridgeSettings settings)
        {
            Check.NotNull(settings, "settings");
            settings.Validate();
            DeviceId = settings.DeviceId;
            queue = new EventQueue(settings.QueueCapacity, 256);
            configs = new ConfigStore(settings.DeviceId, callbacks);
            int helloPairs;
            byte[] hello = settings.EncodeHello(out helloPairs);
            ingress = new IngressLink(ZmtpEndpoint.Parse(settings.IngressEndpoint, "IngressEndpoint"), queue, hello,
                                      helloPairs, settings.MaxBatchEvents, settings.MaxBatchesInFlight,
                                      settings.RequestTimeoutMs);
            configLink = new ConfigLink(ZmtpEndpoint.Parse(settings.ConfigsEndpoint, "ConfigsEndpoint"), configs);
            ingress.Start();
            configLink.Start();
        }

        public string DeviceId { get; private set; }

        /// <summary>True while the daemon has welcomed this client on a live connection.</summary>
        public bool IsConnected { get { return ingress.IsConnected; } }

        /// <summary>The daemon's version from its last <c>welcome</c>, or null before the first one.</summary>
        public string DaemonVersion { get { return ingress.DaemonVersion; } }

        /// <summary>The user's open session as the daemon last reported it, or null.</summary>
        public SessionInfo Session { get { return ingress.Session; } }

        /// <summary>The latest problem seen (connection, refusal, rejected event), for logs; null if none.</summary>
        public string LastError { get { return ingress.LastError ?? configLink.LastError; } }

        /// <summary>The current config values; <see cref="ConfigSnapshot.Empty"/> until the daemon publishes.</summary>
        public ConfigSnapshot Configs { get { return configs.Current; } }

        // ----- events: typed helpers ---------------------------------------------------------------------------

        /// <summary>A design event: <paramref name="eventId"/> is 1 to 5 parts joined by ':' (<c>ui:click:play</c>).</summary>
        public void TrackDesign(string eventId)
        {
            Check.EventId(eventId, "eventId", 5);
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Design], 1, ts);
                w.WriteRaw(Wire.EventId);
                w.WriteString(eventId);
                queue.CommitEvent();
            }
        }

        /// <summary>A design event with a value (finite).</summary>
        public void TrackDesign(string eventId, double value)
        {
            Check.EventId(eventId, "eventId", 5);
            Check.Finite(value, "value");
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Design], 2, ts);
                w.WriteRaw(Wire.EventId);
                w.WriteString(eventId);
                w.WriteRaw(Wire.Value);
                w.WriteDouble(value);
                queue.CommitEvent();
            }
        }

        /// <summary>
        /// A real-money purchase: <paramref name="amount"/> in cents of <paramref name="currency"/> (ISO 4217, e.g.
        /// <c>USD</c>); the event id becomes <c>itemType:itemId</c>.
        /// </summary>
        public void TrackBusiness(string currency, long amount, string itemType, string itemId, string cartType = null)
        {
            Check.Currency(currency, "currency");
            Check.Part(itemType, "itemType");
            Check.Part(itemId, "itemId");
            Check.JoinedLength(itemType.Length + 1 + itemId.Length, "itemType:itemId");
            Check.OptionalText(cartType, "cartType", Wire.MaxStringChars);
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Business], cartType == null ? 3 : 4, ts);
                w.WriteRaw(Wire.EventId);
                w.WriteJoined(itemType, itemId, null, null, null);
                w.WriteRaw(Wire.Amount);
                w.WriteInt(amount);
                w.WriteRaw(Wire.Currency);
                w.WriteString(currency);
                if (cartType != null)
                {
                    w.WriteRaw(Wire.CartType);
                    w.WriteString(cartType);
                }
                queue.CommitEvent();
            }
        }

        /// <summary>
        /// A progression event: the id becomes <c>Status:progression01[:progression02[:progression03]]</c>.
        /// <paramref name="progression03"/> needs <paramref name="progression02"/>.
        /// </summary>
        public void TrackProgression(ProgressionStatus status, string progression01, string progression02 = null,
                                     string progression03 = null, long? score = null, long? attemptNum = null)
        {
            Check.Defined((int)status, Wire.ProgressionStatusNames.Length, "status");
            Check.Part(progression01, "progression01");
            if (progression02 != null) Check.Part(progression02, "progression02");
            if (progression03 != null)
            {
                if (progression02 == null) throw new ArgumentException("progression03 needs progression02", "progression03");
                Check.Part(progression03, "progression03");
            }
            string statusName = Wire.ProgressionStatusNames[(int)status];
            Check.JoinedLength(statusName.Length + Check.PartChars(progression01) + Check.PartChars(progression02)
                               + Check.PartChars(progression03), "the progression id");
            if (attemptNum.HasValue) Check.AtLeast(attemptNum.Value, 1, "attemptNum");
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            int fieldCount = 1 + (score.HasValue ? 1 : 0) + (attemptNum.HasValue ? 1 : 0);
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Progression], fieldCount, ts);
                w.WriteRaw(Wire.EventId);
                w.WriteJoined(statusName, progression01, progression02, progression03, null);
                if (score.HasValue)
                {
                    w.WriteRaw(Wire.Score);
                    w.WriteInt(score.Value);
                }
                if (attemptNum.HasValue)
                {
                    w.WriteRaw(Wire.AttemptNum);
                    w.WriteInt(attemptNum.Value);
                }
                queue.CommitEvent();
            }
        }

        /// <summary>
        /// A virtual-currency flow: the id becomes <c>Source|Sink:currency:itemType:itemId</c>. The amount is
        /// given positive for both flows (finite, above 0); the flow says its direction.
        /// </summary>
        public void TrackResource(ResourceFlow flow, string currency, double amount, string itemType, string itemId)
        {
            Check.Defined((int)flow, Wire.ResourceFlowNames.Length, "flow");
            Check.Part(currency, "currency");
            Check.Finite(amount, "amount");
            if (amount <= 0) throw new ArgumentOutOfRangeException("amount", amount, "amount must be above 0");
            Check.Part(itemType, "itemType");
            Check.Part(itemId, "itemId");
            string flowName = Wire.ResourceFlowNames[(int)flow];
            Check.JoinedLength(flowName.Length + Check.PartChars(currency) + Check.PartChars(itemType)
                               + Check.PartChars(itemId), "the resource id");
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Resource], 2, ts);
                w.WriteRaw(Wire.EventId);
                w.WriteJoined(flowName, currency, itemType, itemId, null);
                w.WriteRaw(Wire.Amount);
                w.WriteDouble(amount);
                queue.CommitEvent();
            }
        }

        /// <summary>An error event; <paramref name="message"/> is at most 8192 chars.</summary>
        public void TrackError(ErrorSeverity severity, string message)
        {
            Check.Defined((int)severity, Wire.SeverityBytes.Length, "severity");
            Check.Text(message, "message", 0, Wire.MaxStringChars);
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Error], 2, ts);
                w.WriteRaw(Wire.Severity);
                w.WriteRaw(Wire.SeverityBytes[(int)severity]);
                w.WriteRaw(Wire.Message);
                w.WriteString(message);
                queue.CommitEvent();
            }
        }

        /// <summary>An ad event: what happened, the kind of ad, the ad network's SDK and the placement.</summary>
        public void TrackAd(AdAction action, AdType adType, string sdkName, string placement, long? durationMs = null)
        {
            Check.Defined((int)action, Wire.AdActionBytes.Length, "action");
            Check.Defined((int)adType, Wire.AdTypeBytes.Length, "adType");
            Check.Text(sdkName, "sdkName", 1, Wire.MaxStringChars);
            Check.Text(placement, "placement", 1, Wire.MaxStringChars);
            if (durationMs.HasValue) Check.AtLeast(durationMs.Value, 0, "durationMs");
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Ads], durationMs.HasValue ? 5 : 4, ts);
                w.WriteRaw(Wire.AdAction);
                w.WriteRaw(Wire.AdActionBytes[(int)action]);
                w.WriteRaw(Wire.AdType);
                w.WriteRaw(Wire.AdTypeBytes[(int)adType]);
                w.WriteRaw(Wire.AdSdkName);
                w.WriteString(sdkName);
                w.WriteRaw(Wire.AdPlacement);
                w.WriteString(placement);
                if (durationMs.HasValue)
                {
                    w.WriteRaw(Wire.AdDuration);
                    w.WriteInt(durationMs.Value);
                }
                queue.CommitEvent();
            }
        }

        /// <summary>A custom event with only a name (1 to 64 chars).</summary>
        public void TrackCustom(string name)
        {
            Check.Text(name, "name", 1, Wire.MaxCustomNameChars);
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Custom], 1, ts);
                w.WriteRaw(Wire.Name);
                w.WriteString(name);
                queue.CommitEvent();
            }
        }

        /// <summary>
        /// A custom event with fields of its own (any names but <c>name</c>). Encodes through a temporary
        /// buffer, so unlike the typed helpers it allocates.
        /// </summary>
        public void TrackCustom(string name, IDictionary<string, object> fields)
        {
            Check.Text(name, "name", 1, Wire.MaxCustomNameChars);
            Check.Fields(fields, "fields");
            if (fields.ContainsKey(Wire.NameField)) throw new ArgumentException("fields must not hold \"name\": it is the name argument", "fields");
            if (fields.Count + 1 > Wire.MaxFields) throw new ArgumentException("fields holds more than " + (Wire.MaxFields - 1) + " entries", "fields");
            var encoded = new MsgPackWriter(256);
            encoded.WriteRaw(Wire.Name);
            encoded.WriteString(name);
            EnqueueEncoded(EventCategory.Custom, fields, encoded, 1);
        }

        /// <summary>
        /// Any event, its fields given as a map: the generic form behind the typed helpers, for fields they do not
        /// cover (<c>custom_01</c>, <c>custom_fields</c>, <c>receipt_info</c>, ...). The category's required fields
        /// are checked here. Allocates, unlike the typed helpers.
        /// </summary>
        public void Track(EventCategory category, IDictionary<string, object> fields)
        {
            Check.Defined((int)category, Wire.CategoryNames.Length, "category");
            Check.Fields(fields, "fields");
            Check.RequiredFields(category, fields, "fields");
            EnqueueEncoded(category, fields, new MsgPackWriter(256), 0);
        }

        // ----- sessions, flush, purchases ----------------------------------------------------------------------

        /// <summary>Starts a play session (ending the open one); sent after the events tracked before it.</summary>
        public void StartSession()
        {
            EnqueueSessionRequest(Wire.SessionStartType);
        }

        /// <summary>Ends the open play session; sent after the events tracked before it.</summary>
        public void EndSession()
        {
            EnqueueSessionRequest(Wire.SessionEndType);
        }

        /// <summary>
        /// Asks the daemon to hand queued events to the providers now (e.g. before quitting). The optional callback
        /// gets the daemon's count of this device's events not yet delivered, or -1 if the flush failed.
        /// </summary>
        public void Flush(Action<long> onFlushed = null)
        {
            Enqueue(new ControlRequest(Wire.FlushType, null, 0, delegate(Reply reply)
            {
                if (reply.IsError) NoteError(reply);
                if (onFlushed == null) return;
                long queued = reply.IsError ? -1 : reply.GetLong("queued", -1);
                callbacks.Post(delegate { onFlushed(queued); });
            }));
        }

        /// <summary>
        /// Sends a purchase receipt to the daemon for verification and returns the purchase's id. The callback
        /// runs at a later <see cref="Pump"/> with the daemon's answer; until a staq provider is configured on the
        /// daemon that answer is the error <c>not_configured</c>.
        /// </summary>
        public string VerifyPurchase(PurchaseReceipt receipt, Action<PurchaseResult> onResult)
        {
            Check.NotNull(receipt, "receipt");
            Check.NotNull(onResult, "onResult");
            Check.Defined((int)receipt.Store, Wire.PurchaseStoreNames.Length, "receipt.Store");
            Check.Text(receipt.Receipt, "receipt.Receipt", 1, Wire.MaxReceiptChars);
            if (receipt.Store == PurchaseStore.GooglePlay) Check.Text(receipt.Signature, "receipt.Signature", 1, Wire.MaxReceiptChars);
            if (receipt.PriceUsd.HasValue)
            {
                Check.Finite(receipt.PriceUsd.Value, "receipt.PriceUsd");
                if (receipt.PriceUsd.Value < 0) throw new ArgumentOutOfRangeException("receipt.PriceUsd", receipt.PriceUsd.Value, "a price cannot be negative");
            }
            Check.OptionalText(receipt.Status, "receipt.Status", Wire.MaxStringChars);
            Check.OptionalText(receipt.Comment, "receipt.Comment", Wire.MaxStringChars);
            if (receipt.Metadata != null) Check.Fields(receipt.Metadata, "receipt.Metadata");

            string id = Guid.NewGuid().ToString("D");
            var pairs = new MsgPackWriter(receipt.Receipt.Length + 256);
            int count = 0;
            Wire.Pair(pairs, "id", id, ref count);
            Wire.Pair(pairs, "store", Wire.PurchaseStoreNames[(int)receipt.Store], ref count);
            Wire.Pair(pairs, "receipt", receipt.Receipt, ref count);
            if (receipt.Store == PurchaseStore.GooglePlay) Wire.Pair(pairs, "signature", receipt.Signature, ref count);
            if (receipt.PriceUsd.HasValue) Wire.Pair(pairs, "price_usd", receipt.PriceUsd.Value, ref count);
            Wire.Pair(pairs, "status", receipt.Status, ref count);
            Wire.Pair(pairs, "comment", receipt.Comment, ref count);
            Wire.Pair(pairs, "metadata", receipt.Metadata, ref count);
            Enqueue(new ControlRequest(Wire.PurchaseType, pairs.ToArray(), count, delegate(Reply reply)
            {
                var result = new PurchaseResult(id, reply.ErrorCode, reply.ErrorMessage, reply.Map);
                callbacks.Post(delegate { onResult(result); });
            }));
            return id;
        }

        // ----- configs, callbacks, stats, shutdown -------------------------------------------------------------

        /// <summary>
        /// Calls <paramref name="onChange"/> (on the pump thread) with the new snapshot whenever a config topic
        /// changes; if configs have already arrived, it is first called with the current snapshot at the next
        /// pump. Dispose the result to unsubscribe.
        /// </summary>
        public IDisposable SubscribeConfigs(Action<ConfigSnapshot> onChange)
        {
            Check.NotNull(onChange, "onChange");
            return configs.Subscribe(onChange);
        }

        /// <summary>
        /// Runs the callbacks that are due, on the calling thread, and returns how many ran. Call it once per
        /// frame from the game's main thread (the Unity runner does it in Update). Cheap when nothing is due.
        /// </summary>
        public int Pump()
        {
            return callbacks.Pump();
        }

        public BridgeStats GetStats()
        {
            var stats = new BridgeStats();
            queue.ReadCounters(ref stats);
            ingress.ReadCounters(ref stats);
            return stats;
        }

        /// <summary>
        /// Stops the client: waits up to <paramref name="drainTimeoutMs"/> for queued events to be acknowledged
        /// (only while connected: with the daemon away nothing can drain), then ends the I/O threads. Events
        /// still queued are lost. Track calls afterwards are ignored and counted as dropped.
        /// </summary>
        public void Shutdown(int drainTimeoutMs)
        {
            if (shutDown) return;
            long deadline = Clock.Milliseconds + Math.Max(0, drainTimeoutMs);
            while (ingress.IsConnected && !queue.IsDrained && Clock.Milliseconds < deadline) Thread.Sleep(5);
            shutDown = true;
            ingress.Stop(StopTimeoutMs);
            configLink.Stop(StopTimeoutMs);
        }

        /// <summary><see cref="Shutdown"/> with <see cref="DefaultDrainTimeoutMs"/>.</summary>
        public void Dispose()
        {
            Shutdown(DefaultDrainTimeoutMs);
        }

        private bool RefuseAfterShutdown()
        {
            if (!shutDown) return false;
            queue.CountDropped();
            return true;
        }

        /// <summary>The generic path: validated fields encoded into a temporary buffer, then copied into the queue.</summary>
        private void EnqueueEncoded(EventCategory category, IDictionary<string, object> fields, MsgPackWriter encoded, int pairsWritten)
        {
            foreach (var entry in fields)
            {
                encoded.WriteString(entry.Key);
                encoded.WriteValue(entry.Value);
            }
            if (encoded.Length > Wire.MaxEventBytes - 256)
            {
                throw new ArgumentException("the event encodes to " + encoded.Length + " bytes; the limit is "
                                            + (Wire.MaxEventBytes - 256), "fields");
            }
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)category], pairsWritten + fields.Count, ts);
                w.WriteRaw(encoded.Buffer, 0, encoded.Length);
                queue.CommitEvent();
            }
        }

        private void EnqueueSessionRequest(byte[] type)
        {
            var pairs = new MsgPackWriter(16);
            int count = 0;
            Wire.Pair(pairs, "ts", Wire.NowMs(), ref count);
            Enqueue(new ControlRequest(type, pairs.ToArray(), count, delegate(Reply reply)
            {
                if (reply.IsError) NoteError(reply);
                else ingress.Session = new SessionInfo(reply.Map);
            }));
        }

        private void Enqueue(ControlRequest request)
        {
            if (shutDown)
            {
                request.Fail("shut_down", "the client was shut down");
                return;
            }
            queue.EnqueueControl(request);
        }

        private void NoteError(Reply reply)
        {
            ingress.LastError = reply.ErrorCode + ": " + reply.ErrorMessage;
        }
    }
}
