using System;
using System.Collections.Generic;
using System.Threading;
using EngineBridge.Internal;

namespace EngineBridge
{
    /// <summary>
    /// The game's connection to the engine-bridge daemon: one per game, made with <see cref="Connect"/>.
    ///
    /// Every call returns at once. Track calls check their arguments (an ArgumentException at the call site for a
    /// bad one), encode the event into a preallocated buffer and return: no allocation, no I/O, no waiting on
    /// the daemon. Two background threads do all the I/O: one sends events in acknowledged batches and resends
    /// what was not acknowledged after the daemon restarts; one receives config updates and purchase verdicts.
    /// Callbacks (configs, session and flush replies, purchase verdicts) run on the thread that calls
    /// <see cref="Pump"/>: in Unity, the main thread, every frame.
    /// </summary>
    public sealed class BridgeClient : IDisposable
    {
        /// <summary>The binding's name, sent in <c>hello</c>.</summary>
        public const string BindingName = "engine-bridge-unity";

        /// <summary>The binding's version, sent in <c>hello</c>; matches package.json.</summary>
        public const string BindingVersion = "0.3.0";

        private const int StopTimeoutMs = 1000;

        // The fields each typed helper writes itself: its `extra` fields may not repeat them.
        private static readonly string[] DesignFields = { "event_id", "value" };
        private static readonly string[] BusinessFields = { "event_id", "amount", "currency", "cart_type" };
        private static readonly string[] ProgressionFields = { "event_id", "score", "attempt_num" };
        private static readonly string[] ResourceFields = { "event_id", "amount" };
        private static readonly string[] ErrorFields = { "severity", "message" };
        private static readonly string[] AdFields =
            { "ad_action", "ad_type", "ad_sdk_name", "ad_placement", "ad_duration", "ad_fail_show_reason" };
        private static readonly string[] ImpressionFields = { "ad_network_name", "ad_network_version", "impression_data" };
        private static readonly string[] CustomFields = { Wire.NameField };

        private readonly EventQueue queue;
        private readonly CallbackQueue callbacks = new CallbackQueue();
        private readonly Limits limits = new Limits();
        private readonly ConfigStore configs;
        private readonly PurchaseVerdicts purchases;
        private readonly ProviderRefusals refusals;
        private readonly ConnectionMonitor monitor;
        private readonly IngressLink ingress;
        private readonly ConfigLink configLink;
        private readonly DaemonProcess daemon;
        private readonly int shutdownGraceMs;
        private readonly bool supported = Platform.Unsupported == null;
        private volatile bool shutDown;

        private BridgeClient(GameInfo game, BridgeSettings settings)
        {
            DeviceId = game.DeviceId;
            shutdownGraceMs = settings.ShutdownGraceMs;
            queue = new EventQueue(supported ? settings.QueueCapacity : 1, 256);
            var log = new ConsoleLog(settings.Log, callbacks);
            configs = new ConfigStore(game.DeviceId, callbacks);
            purchases = new PurchaseVerdicts(game.DeviceId, callbacks);
            refusals = new ProviderRefusals(callbacks, log, settings.WarningIntervalMs);
            daemon = supported && settings.Daemon != null && settings.Daemon.Enabled ? new DaemonProcess(settings.Daemon, settings.Daemon.CommandFor(settings.Ingress, settings.Configs, settings.Game)) : null;
            monitor = new ConnectionMonitor(callbacks, log, daemon != null ? daemon.Command : null);
            int helloPairs;
            byte[] hello = game.EncodeHello(out helloPairs, settings.Game);
            ingress = new IngressLink(ZmtpEndpoint.Parse(settings.Ingress, "settings.IngressEndpoint"), queue, limits,
                                      refusals, hello, helloPairs, settings, daemon, monitor.OnIngress);
            configLink = new ConfigLink(ZmtpEndpoint.Parse(settings.Configs, "settings.ConfigsEndpoint"), configs,
                                        purchases, monitor.OnConfigs);
            if (!supported)
            {
                // No thread, no socket, a one-slot queue: a client that was shut down from the start.
                shutDown = true;
                log.Write(BridgeLogLevel.Warning, Platform.Unsupported);
                return;
            }
            ingress.Start();
            configLink.Start();
        }

        /// <summary>
        /// Checks the arguments (an ArgumentException naming the bad one) and starts the background threads; returns
        /// at once, whether or not a daemon is listening yet: events queue until one answers, and the client says
        /// <c>hello</c> with <paramref name="game"/> on every connection. Null settings: the defaults.
        /// </summary>
        public static BridgeClient Connect(GameInfo game, BridgeSettings settings = null)
        {
            Check.NotNull(game, "game");
            game.Validate();
            settings = settings ?? new BridgeSettings();
            settings.Validate();
            return new BridgeClient(game, settings);
        }

        public string DeviceId { get; private set; }

        /// <summary>True while the daemon has welcomed this client on a live connection.</summary>
        public bool IsConnected { get { return ingress.IsConnected; } }

        /// <summary>Where the client stands with the daemon now; <see cref="ConnectionState.Unsupported"/> on WebGL.</summary>
        public ConnectionState State
        {
            get { return supported ? ingress.State : ConnectionState.Unsupported; }
        }

        /// <summary>
        /// Every change of <see cref="State"/> (from <see cref="ConnectionState.Connecting"/> at Connect), with why (the
        /// connection error, or who welcomed the client), on the pump thread.
        /// The engine's console also hears, once per outage, when the daemon cannot be reached or another program
        /// holds its port, and once more when it is back.
        /// </summary>
        public event Action<ConnectionState, string> ConnectionChanged
        {
            add { monitor.AddHandler(value); }
            remove { monitor.RemoveHandler(value); }
        }

        /// <summary>
        /// Events the daemon stored but that a provider's rules refuse (<see cref="ProviderRefusal"/>: the event id,
        /// the provider, the rule), one call each, on the pump thread. Counted in <see cref="BridgeStats.ProviderRefusals"/>
        /// and written to the engine's console as a warning, at most once per
        /// <see cref="BridgeSettings.WarningIntervalMs"/>.
        /// </summary>
        public event Action<ProviderRefusal> ProviderRefused
        {
            add { refusals.AddHandler(value); }
            remove { refusals.RemoveHandler(value); }
        }

        /// <summary>The daemon's version from its last <c>welcome</c>, or null before the first one.</summary>
        public string DaemonVersion { get { return ingress.DaemonVersion; } }

        /// <summary>The user's open session as the daemon last reported it, or null.</summary>
        public SessionInfo Session { get { return ingress.Session; } }

        /// <summary>The latest problem seen (connection, refusal, rejected event), for logs; null if none since the last (re)connection.</summary>
        public string LastError { get { return ingress.LastError ?? configLink.LastError; } }

        // ----- events: check, encode, enqueue, return ----------------------------------------------------------

        /// <summary>A design event: <paramref name="eventId"/> is 1 to 5 parts joined by ':' (<c>ui:click:play</c>); the value, if any, finite.</summary>
        public void TrackDesign(string eventId, double? value = null, IDictionary<string, object> extra = null)
        {
            Check.EventId(limits, eventId, "eventId", 5);
            if (value.HasValue) Check.Finite(value.Value, "value");
            var more = EncodeExtra(extra, DesignFields);
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Design], (value.HasValue ? 2 : 1) + Count(extra), ts, null, null);
                w.WriteRaw(Wire.EventId);
                w.WriteString(eventId);
                if (value.HasValue)
                {
                    w.WriteRaw(Wire.Value);
                    w.WriteDouble(value.Value);
                }
                Commit(w, more);
            }
        }

        /// <summary>
        /// A real-money purchase: <paramref name="amountCents"/> in the minor unit of <paramref name="currency"/>
        /// (ISO 4217, e.g. <c>USD</c>), zero or more; the event id becomes <c>itemType:itemId</c> (each part 1 to 64 chars,
        /// as <paramref name="cartType"/> if given).
        /// </summary>
        public void TrackBusiness(string currency, long amountCents, string itemType, string itemId, string cartType = null,
                                  IDictionary<string, object> extra = null)
        {
            Check.Currency(currency, "currency");
            Check.AtLeast(amountCents, 0, "amountCents");
            Check.Part(limits, itemType, "itemType");
            Check.Part(limits, itemId, "itemId");
            Check.JoinedLength(limits, itemType.Length + 1 + itemId.Length, "itemType:itemId");
            Check.OptionalText(cartType, "cartType", Wire.MaxPartChars);
            var more = EncodeExtra(extra, BusinessFields);
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Business], (cartType == null ? 3 : 4) + Count(extra), ts, null, null);
                w.WriteRaw(Wire.EventId);
                w.WriteJoined(itemType, itemId, null, null, null);
                w.WriteRaw(Wire.Amount);
                w.WriteInt(amountCents);
                w.WriteRaw(Wire.Currency);
                w.WriteString(currency);
                if (cartType != null)
                {
                    w.WriteRaw(Wire.CartType);
                    w.WriteString(cartType);
                }
                Commit(w, more);
            }
        }

        /// <summary>
        /// A progression event: the id becomes <c>Status:progression01[:progression02[:progression03]]</c>
        /// (world, level, phase); <paramref name="progression03"/> needs <paramref name="progression02"/>.
        /// </summary>
        public void TrackProgression(ProgressionStatus status, string progression01, string progression02 = null,
                                     string progression03 = null, long? score = null, long? attemptNum = null,
                                     IDictionary<string, object> extra = null)
        {
            Check.Defined((int)status, Wire.ProgressionStatusNames.Length, "status");
            Check.Part(limits, progression01, "progression01");
            if (progression02 != null) Check.Part(limits, progression02, "progression02");
            if (progression03 != null)
            {
                if (progression02 == null) throw new ArgumentException("progression03 needs progression02", "progression03");
                Check.Part(limits, progression03, "progression03");
            }
            string statusName = Wire.ProgressionStatusNames[(int)status];
            Check.JoinedLength(limits, statusName.Length + Check.PartChars(progression01) + Check.PartChars(progression02)
                               + Check.PartChars(progression03), "the progression id");
            if (attemptNum.HasValue) Check.AtLeast(attemptNum.Value, 1, "attemptNum");
            var more = EncodeExtra(extra, ProgressionFields);
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            int fieldCount = 1 + (score.HasValue ? 1 : 0) + (attemptNum.HasValue ? 1 : 0) + Count(extra);
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Progression], fieldCount, ts, null, null);
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
                Commit(w, more);
            }
        }

        /// <summary>
        /// A virtual-currency flow: the id becomes <c>Source|Sink:currency:itemType:itemId</c>. The amount is
        /// given positive for both flows (finite, above 0); the flow gives its direction.
        /// </summary>
        public void TrackResource(ResourceFlow flow, string currency, double amount, string itemType, string itemId,
                                  IDictionary<string, object> extra = null)
        {
            Check.Defined((int)flow, Wire.ResourceFlowNames.Length, "flow");
            Check.Part(limits, currency, "currency");
            Check.Finite(amount, "amount");
            if (amount <= 0) throw new ArgumentOutOfRangeException("amount", amount, "amount must be above 0");
            Check.Part(limits, itemType, "itemType");
            Check.Part(limits, itemId, "itemId");
            string flowName = Wire.ResourceFlowNames[(int)flow];
            Check.JoinedLength(limits, flowName.Length + Check.PartChars(currency) + Check.PartChars(itemType)
                               + Check.PartChars(itemId), "the resource id");
            var more = EncodeExtra(extra, ResourceFields);
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Resource], 2 + Count(extra), ts, null, null);
                w.WriteRaw(Wire.EventId);
                w.WriteJoined(flowName, currency, itemType, itemId, null);
                w.WriteRaw(Wire.Amount);
                w.WriteDouble(amount);
                Commit(w, more);
            }
        }

        /// <summary>An error event; <paramref name="message"/> is at most the daemon's max_string_chars (8192).</summary>
        public void TrackError(ErrorSeverity severity, string message, IDictionary<string, object> extra = null)
        {
            Check.Defined((int)severity, Wire.SeverityBytes.Length, "severity");
            Check.Text(message, "message", 0, limits.MaxStringChars);
            var more = EncodeExtra(extra, ErrorFields);
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Error], 2 + Count(extra), ts, null, null);
                w.WriteRaw(Wire.Severity);
                w.WriteRaw(Wire.SeverityBytes[(int)severity]);
                w.WriteRaw(Wire.Message);
                w.WriteString(message);
                Commit(w, more);
            }
        }

        /// <summary>
        /// An ad event: what happened, the kind of ad, the ad network's SDK and the placement (1 to 64 chars each).
        /// <paramref name="durationMs"/> (at least 0) is sent as <c>ad_duration</c>, which GameAnalytics takes on
        /// <see cref="AdType.Video"/> and <see cref="AdType.RewardedVideo"/> ads; <paramref name="failShowReason"/> as
        /// <c>ad_fail_show_reason</c>, which it takes with <see cref="AdAction.FailedShow"/> (on other events it gets
        /// either in <c>custom_fields</c>). <paramref name="extra"/> may not hold these fields; an <c>ad_fb_error</c>
        /// in it, the reason's first name, is deprecated: it is taken as <paramref name="failShowReason"/> (one of its
        /// wire names, <c>no_fill</c>, ...) and sent as <c>ad_fail_show_reason</c>.
        /// </summary>
        public void TrackAd(AdAction action, AdType adType, string sdkName, string placement, long? durationMs = null,
                            AdFailShowReason? failShowReason = null, IDictionary<string, object> extra = null)
        {
            Check.Defined((int)action, Wire.AdActionBytes.Length, "action");
            Check.Defined((int)adType, Wire.AdTypeBytes.Length, "adType");
            Check.Text(sdkName, "sdkName", 1, Wire.MaxPartChars);
            Check.Text(placement, "placement", 1, Wire.MaxPartChars);
            if (durationMs.HasValue) Check.AtLeast(durationMs.Value, 0, "durationMs");
            int reason = -1;
            if (failShowReason.HasValue)
            {
                reason = (int)failShowReason.Value;
                Check.Defined(reason, Wire.AdFailShowReasonBytes.Length, "failShowReason");
            }
            extra = TakeAdFbError(extra, ref reason);
            var more = EncodeExtra(extra, AdFields);
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            int fieldCount = 4 + (durationMs.HasValue ? 1 : 0) + (reason >= 0 ? 1 : 0) + Count(extra);
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Ads], fieldCount, ts, null, null);
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
                if (reason >= 0)
                {
                    w.WriteRaw(Wire.AdFailShowReason);
                    w.WriteRaw(Wire.AdFailShowReasonBytes[reason]);
                }
                Commit(w, more);
            }
        }

        /// <summary>
        /// <see cref="TrackAd(AdAction, AdType, string, string, long?, AdFailShowReason?, IDictionary{string, object})"/>
        /// as 0.3 had it, <paramref name="extra"/> in sixth place: kept so that those calls still compile.
        /// </summary>
        public void TrackAd(AdAction action, AdType adType, string sdkName, string placement, long? durationMs,
                            IDictionary<string, object> extra)
        {
            TrackAd(action, adType, sdkName, placement, durationMs, null, extra);
        }

        /// <summary>
        /// Ad revenue: an ad network's impression record as the network's SDK gave it (<paramref name="impressionData"/>:
        /// revenue, currency, precision, ...), sent as an <c>impression</c> event with the network's name
        /// (<c>max</c>, <c>admob</c>, <c>ironsource</c>, ...) and its SDK's version, 1 to 64 chars each. The record is
        /// a field map like <paramref name="extra"/> (the two together encode to at most a quarter of the daemon's
        /// <c>max_message_bytes</c>), and like it allocates.
        /// </summary>
        public void TrackImpression(string adNetworkName, string adNetworkVersion, IDictionary<string, object> impressionData,
                                    IDictionary<string, object> extra = null)
        {
            Check.Text(adNetworkName, "adNetworkName", 1, Wire.MaxPartChars);
            Check.Text(adNetworkVersion, "adNetworkVersion", 1, Wire.MaxPartChars);
            Check.FieldMap(limits, impressionData, "impressionData");
            var more = EncodeExtra(extra, ImpressionFields);
            var data = new MsgPackWriter(256);
            data.WriteRaw(Wire.ImpressionData);
            data.WriteMapHeader(impressionData.Count);
            foreach (var entry in impressionData)
            {
                data.WriteString(entry.Key);
                data.WriteValue(entry.Value);
            }
            if (more != null) data.WriteRaw(more.Buffer, 0, more.Length);
            if (data.Length > limits.MaxExtraBytes)
            {
                throw new ArgumentException("impressionData and extra encode to " + data.Length + " bytes; the limit is "
                                            + limits.MaxExtraBytes, "impressionData");
            }
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Impression], 3 + Count(extra), ts, null, null);
                w.WriteRaw(Wire.AdNetworkName);
                w.WriteString(adNetworkName);
                w.WriteRaw(Wire.AdNetworkVersion);
                w.WriteString(adNetworkVersion);
                Commit(w, data);
            }
        }

        /// <summary>A custom event: <paramref name="name"/> 1 to 64 chars, and any fields of its own but <c>name</c>.</summary>
        public void TrackCustom(string name, IDictionary<string, object> fields = null)
        {
            Check.Text(name, "name", 1, Wire.MaxCustomNameChars);
            var more = EncodeExtra(fields, CustomFields, "fields");
            if (RefuseAfterShutdown()) return;
            long ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)EventCategory.Custom], 1 + Count(fields), ts, null, null);
                w.WriteRaw(Wire.Name);
                w.WriteString(name);
                Commit(w, more);
            }
        }

        /// <summary>
        /// Any event, its fields given as a map: for what the typed helpers do not cover (<c>custom_01</c>,
        /// <c>custom_fields</c>, <c>receipt_info</c>, ...) and for dedicated servers and replays
        /// (<see cref="EventOptions"/>: the event's id, user and time). The category's required fields are checked
        /// here. Encodes through a temporary buffer, so unlike the typed helpers it allocates.
        /// </summary>
        public void Track(EventCategory category, IDictionary<string, object> fields, EventOptions options = null)
        {
            Check.Defined((int)category, Wire.CategoryNames.Length, "category");
            Check.NotNull(fields, "fields");
            Check.RequiredFields(category, fields, "fields");
            Check.JoinedId(category, fields, "fields");
            var encoded = Encode(fields, "fields", limits.MaxEventBytes - 512);
            string id = null, userId = null;
            long ts = -1;
            if (options != null)
            {
                id = options.Id;
                userId = options.UserId;
                if (id != null) Check.EventUid(limits, id, "options.Id");
                if (userId != null) Check.Text(userId, "options.UserId", 1, 128);
                if (options.TimestampMs.HasValue)
                {
                    Check.AtLeast(options.TimestampMs.Value, 0, "options.TimestampMs");
                    ts = options.TimestampMs.Value;
                }
            }
            if (RefuseAfterShutdown()) return;
            if (ts < 0) ts = Wire.NowMs();
            lock (queue.Gate)
            {
                var w = queue.BeginEvent(Wire.CategoryBytes[(int)category], fields.Count, ts, id, userId);
                Commit(w, encoded);
            }
        }

        // ----- requests with a reply: sent in order after the events tracked before them -----------------------

        /// <summary>Starts a play session (ending the open one); <see cref="Session"/> follows the reply.</summary>
        public void StartSession(Action<Reply> onReply = null)
        {
            EnqueueSessionRequest(Wire.SessionStartType, onReply);
        }

        /// <summary>Ends the open play session (the reply is the error <c>no_session</c> if there is none).</summary>
        public void EndSession(Action<Reply> onReply = null)
        {
            EnqueueSessionRequest(Wire.SessionEndType, onReply);
        }

        /// <summary>
        /// Asks the daemon to hand queued events to the providers now (e.g. before quitting). The reply's
        /// <c>queued</c> counts this device's events not yet delivered.
        /// </summary>
        public void Flush(Action<Reply> onReply = null)
        {
            Enqueue(new ControlRequest(Wire.FlushType, null, 0, delegate(WireReply reply)
            {
                if (reply.IsError) NoteError(reply);
                Answer(onReply, reply);
            }));
        }

        /// <summary>
        /// The player's consent (protocol.md section 4.10), queued after the events tracked before it: per purpose,
        /// <c>analytics</c> (anything of the player leaving the machine) and <c>ipAds</c> (their IP address and
        /// advertising ids). The reply says each purpose's new state. <paramref name="userId"/>: a dedicated
        /// server's player (null: the hello user).
        /// </summary>
        public void SetConsent(ConsentState analytics, ConsentState ipAds = ConsentState.Unchanged, string userId = null,
                               Action<Reply> onReply = null)
        {
            if (analytics == ConsentState.Unchanged && ipAds == ConsentState.Unchanged)
                throw new ArgumentException("give analytics, ipAds or both", "analytics");
            var pairs = PlayerPairs(userId, out int count);
            Wire.Pair(pairs, "analytics", ConsentName(analytics), ref count);
            Wire.Pair(pairs, "ip_ads", ConsentName(ipAds), ref count);
            EnqueuePlayerRequest(Wire.ConsentType, pairs, count, onReply);
        }

        /// <summary>
        /// Erases the player at the daemon ("delete my data", protocol.md section 4.11): their events, sessions and
        /// configs go, and each provider gets an entry in the daemon's erasure ledger. <paramref name="userId"/>: a
        /// dedicated server's player (null: the hello user).
        /// </summary>
        public void Forget(string userId = null, Action<Reply> onReply = null)
        {
            var pairs = PlayerPairs(userId, out int count);
            EnqueuePlayerRequest(Wire.ForgetType, pairs, count, onReply);
        }

        private static MsgPackWriter PlayerPairs(string userId, out int count)
        {
            if (userId != null) Check.Text(userId, "userId", 1, 128);
            var pairs = new MsgPackWriter(64);
            count = 0;
            Wire.Pair(pairs, "user_id", userId, ref count);
            return pairs;
        }

        private static string ConsentName(ConsentState state)
        {
            return state == ConsentState.Unchanged ? null : state == ConsentState.Granted ? "granted" : "denied";
        }

        private void EnqueuePlayerRequest(byte[] type, MsgPackWriter pairs, int count, Action<Reply> onReply)
        {
            Enqueue(new ControlRequest(type, pairs.ToArray(), count, delegate(WireReply reply)
            {
                if (reply.IsError) NoteError(reply);
                Answer(onReply, reply);
            }));
        }

        /// <summary>
        /// Sends a purchase receipt to the daemon, which stores it durably and has it verified, and returns the
        /// purchase's id. <paramref name="onResult"/> runs exactly once, at a later <see cref="Pump"/>: with the
        /// verdict, at once if the store answers within 5 s, else as soon as the daemon gets it (staq down, the
        /// machine offline: the daemon keeps trying); or with the error that refused the request (e.g.
        /// <c>not_configured</c> while the daemon has no staq provider). If the game quits first, the verdict goes
        /// to <see cref="PurchaseVerified"/> at its next start.
        /// </summary>
        public string VerifyPurchase(Purchase purchase, Action<PurchaseResult> onResult)
        {
            Check.NotNull(purchase, "purchase");
            Check.NotNull(onResult, "onResult");
            if (purchase.Id != null) Check.EventUid(limits, purchase.Id, "purchase.Id");
            Check.Defined((int)purchase.Store, Wire.PurchaseStoreNames.Length, "purchase.Store");
            Check.Base64(purchase.Receipt, "purchase.Receipt", Wire.MaxReceiptChars);
            if (purchase.Store == PurchaseStore.GooglePlay) Check.Base64(purchase.Signature, "purchase.Signature", Wire.MaxReceiptChars);
            if (purchase.PriceUsd.HasValue)
            {
                Check.Finite(purchase.PriceUsd.Value, "purchase.PriceUsd");
                if (purchase.PriceUsd.Value < 0)
                {
                    throw new ArgumentOutOfRangeException("purchase.PriceUsd", purchase.PriceUsd.Value, "a price cannot be negative");
                }
            }
            if (purchase.Status.HasValue) Check.Defined((int)purchase.Status.Value, Wire.PurchaseStatusNames.Length, "purchase.Status");
            Check.OptionalText(purchase.Comment, "purchase.Comment", Wire.MaxPurchaseCommentChars);
            if (purchase.Metadata != null) Check.Fields(limits, purchase.Metadata, "purchase.Metadata");

            string id = purchase.Id ?? Guid.NewGuid().ToString("D");
            var pairs = new MsgPackWriter(purchase.Receipt.Length + 256);
            int count = 0;
            Wire.Pair(pairs, "id", id, ref count);
            Wire.Pair(pairs, "store", Wire.PurchaseStoreNames[(int)purchase.Store], ref count);
            Wire.Pair(pairs, "receipt", purchase.Receipt, ref count);
            if (purchase.Store == PurchaseStore.GooglePlay) Wire.Pair(pairs, "signature", purchase.Signature, ref count);
            if (purchase.PriceUsd.HasValue) Wire.Pair(pairs, "price_usd", purchase.PriceUsd.Value, ref count);
            if (purchase.Status.HasValue) Wire.Pair(pairs, "status", Wire.PurchaseStatusNames[(int)purchase.Status.Value], ref count);
            Wire.Pair(pairs, "comment", purchase.Comment, ref count);
            Wire.Pair(pairs, "metadata", purchase.Metadata, ref count);
            var call = purchases.Expect(id, purchase.Store, onResult);
            Enqueue(new ControlRequest(Wire.PurchaseType, pairs.ToArray(), count, call.OnReply, true));
            return id;
        }

        /// <summary>
        /// Verdicts of purchases this client did not verify itself: made by an earlier run of the game that quit
        /// before the verdict came. The daemon repeats the device's last 50 verdicts to every client that connects;
        /// this event reports each purchase id once per client (a verdict already given to a
        /// <see cref="VerifyPurchase"/> callback is not repeated here). It also reports purchases an earlier run saw
        /// verified, so keep the ids you granted and grant only the others. Runs on the pump thread; verdicts that
        /// arrive while no handler is attached wait for the first one.
        /// </summary>
        public event Action<PurchaseResult> PurchaseVerified
        {
            add { purchases.AddHandler(value); }
            remove { purchases.RemoveHandler(value); }
        }

        // ----- configs -----------------------------------------------------------------------------------------

        /// <summary>The current config values; <see cref="ConfigSnapshot.Empty"/> until the daemon publishes.</summary>
        public ConfigSnapshot Configs { get { return configs.Current; } }

        /// <summary>
        /// Calls <paramref name="onChange"/> (on the pump thread) with the key and its new value whenever the key's
        /// value changes (null once no topic has it), and at the next pump with the current value if it is already
        /// known (a late subscribe). Dispose the result to unsubscribe.
        /// </summary>
        public IDisposable SubscribeConfig(string key, Action<string, object> onChange)
        {
            Check.NotNull(key, "key");
            Check.NotNull(onChange, "onChange");
            return configs.Subscribe(key, onChange);
        }

        /// <summary>Like <see cref="SubscribeConfig"/> for the whole snapshot: called at every change of any topic.</summary>
        public IDisposable SubscribeConfigs(Action<ConfigSnapshot> onChange)
        {
            Check.NotNull(onChange, "onChange");
            return configs.Subscribe(onChange);
        }

        /// <summary>Typed getters on <see cref="Configs"/>: the key's value, or the fallback when absent or unreadable as that type.</summary>
        public string GetString(string key, string fallback = null)
        {
            return Configs.GetString(key, fallback);
        }

        public int GetInt(string key, int fallback = 0)
        {
            return Configs.GetInt(key, fallback);
        }

        public long GetLong(string key, long fallback = 0)
        {
            return Configs.GetLong(key, fallback);
        }

        public double GetDouble(string key, double fallback = 0)
        {
            return Configs.GetDouble(key, fallback);
        }

        public bool GetBool(string key, bool fallback = false)
        {
            return Configs.GetBool(key, fallback);
        }

        /// <summary>The raw value of a key (see <see cref="ConfigSnapshot.TryGetValue"/>).</summary>
        public bool TryGetConfig(string key, out object value)
        {
            return Configs.TryGetValue(key, out value);
        }

        // ----- callbacks, stats, shutdown ----------------------------------------------------------------------

        /// <summary>
        /// Runs the callbacks that are due, on the calling thread, and returns how many ran. Call it once per
        /// frame from the game's main thread (the Unity runner does it in Update). Cheap when nothing is due.
        /// </summary>
        public int Pump()
        {
            refusals.Tick();
            return callbacks.Pump();
        }

        public BridgeStats GetStats()
        {
            var stats = new BridgeStats();
            queue.ReadCounters(ref stats);
            ingress.ReadCounters(ref stats);
            stats.ProviderRefusals = refusals.Count;
            return stats;
        }

        /// <summary>
        /// Stops the client: keeps sending queued events for at most <paramref name="graceMs"/> (default
        /// <see cref="BridgeSettings.ShutdownGraceMs"/>; only while connected, since with the daemon away nothing
        /// can drain), ends the I/O threads and stops a daemon this client launched. Events still queued are lost.
        /// Track calls afterwards are ignored and counted as dropped.
        /// </summary>
        public void Shutdown(int? graceMs = null)
        {
            if (shutDown) return;
            long deadline = Clock.Milliseconds + Math.Max(0, graceMs ?? shutdownGraceMs);
            while (ingress.IsConnected && !queue.IsDrained && Clock.Milliseconds < deadline) Thread.Sleep(5);
            shutDown = true;
            ingress.Stop(StopTimeoutMs);
            configLink.Stop(StopTimeoutMs);
            if (daemon != null) daemon.Stop();
        }

        /// <summary><see cref="Shutdown"/> with the configured grace.</summary>
        public void Dispose()
        {
            Shutdown();
        }

        private bool RefuseAfterShutdown()
        {
            if (!shutDown) return false;
            queue.CountDropped();
            return true;
        }

        private static int Count(IDictionary<string, object> fields)
        {
            return fields == null ? 0 : fields.Count;
        }

        /// <summary>A helper's extra fields, checked and encoded before the queue is locked; null when there are none.</summary>
        private MsgPackWriter EncodeExtra(IDictionary<string, object> extra, string[] ownFields, string name = "extra")
        {
            if (extra == null || extra.Count == 0) return null;
            foreach (string own in ownFields)
            {
                if (extra.ContainsKey(own)) throw new ArgumentException(name + " must not hold \"" + own + "\": the call sets it", name);
            }
            if (extra.Count + ownFields.Length > limits.MaxFields)
            {
                throw new ArgumentException(name + " holds " + extra.Count + " entries; with the call's own fields the limit is " + limits.MaxFields, name);
            }
            return Encode(extra, name, limits.MaxExtraBytes);
        }

        /// <summary>
        /// A TrackAd's <c>ad_fb_error</c> extra field (deprecated: protocol v1's first name of
        /// <c>ad_fail_show_reason</c>), taken as the reason and left out of the fields added: the extra fields without
        /// it, copied (this deprecated path alone allocates for it).
        /// </summary>
        private static IDictionary<string, object> TakeAdFbError(IDictionary<string, object> extra, ref int reason)
        {
            object legacy;
            if (extra == null || !extra.TryGetValue(Wire.AdFbErrorField, out legacy)) return extra;
            if (legacy != null)
            {
                if (reason >= 0)
                {
                    throw new ArgumentException("extra holds \"ad_fb_error\", the deprecated name of failShowReason, "
                                                + "which is given too: give failShowReason alone", "extra");
                }
                var text = legacy as string;
                reason = text == null ? -1 : Array.IndexOf(Wire.AdFailShowReasonNames, text);
                if (reason < 0)
                {
                    throw new ArgumentException("extra[\"ad_fb_error\"] (deprecated: use failShowReason) must be one of "
                                                + string.Join(", ", Wire.AdFailShowReasonNames) + ", got "
                                                + (text != null ? "\"" + text + "\"" : legacy.GetType().Name), "extra");
                }
            }
            var rest = new Dictionary<string, object>(extra.Count);
            foreach (var entry in extra)
            {
                if (entry.Key != Wire.AdFbErrorField) rest.Add(entry.Key, entry.Value);
            }
            return rest;
        }

        /// <summary>Checks a fields map and encodes its pairs into a new buffer of at most <paramref name="maxBytes"/>.</summary>
        private MsgPackWriter Encode(IDictionary<string, object> fields, string name, int maxBytes)
        {
            Check.Fields(limits, fields, name);
            var encoded = new MsgPackWriter(256);
            foreach (var entry in fields)
            {
                encoded.WriteString(entry.Key);
                encoded.WriteValue(entry.Value);
            }
            if (encoded.Length > maxBytes)
            {
                throw new ArgumentException(name + " encode to " + encoded.Length + " bytes; the limit is " + maxBytes, name);
            }
            return encoded;
        }

        /// <summary>Appends the pre-encoded fields, if any, and commits the event; under the queue's gate.</summary>
        private void Commit(MsgPackWriter writer, MsgPackWriter encodedFields)
        {
            if (encodedFields != null) writer.WriteRaw(encodedFields.Buffer, 0, encodedFields.Length);
            queue.CommitEvent();
        }

        private void EnqueueSessionRequest(byte[] type, Action<Reply> onReply)
        {
            var pairs = new MsgPackWriter(16);
            int count = 0;
            Wire.Pair(pairs, "ts", Wire.NowMs(), ref count);
            Enqueue(new ControlRequest(type, pairs.ToArray(), count, delegate(WireReply reply)
            {
                if (reply.IsError) NoteError(reply);
                else ingress.Session = new SessionInfo(reply.Map);
                Answer(onReply, reply);
            }));
        }

        private void Enqueue(ControlRequest request)
        {
            if (shutDown)
            {
                if (supported) request.Fail("shut_down", "the client was shut down");
                else request.Fail("unsupported_platform", Platform.Unsupported);
                return;
            }
            queue.EnqueueControl(request);
        }

        /// <summary>Hands a reply to the game's callback, if any, at the next pump.</summary>
        private void Answer(Action<Reply> callback, WireReply reply)
        {
            if (callback == null) return;
            var answer = new Reply(reply.Type, reply.ErrorCode, reply.ErrorMessage, reply.Map);
            callbacks.Post(delegate { callback(answer); });
        }

        private void NoteError(WireReply reply)
        {
            ingress.LastError = reply.ErrorCode + ": " + reply.ErrorMessage;
        }
    }
}
