using System;
using System.Collections.Generic;
using System.Threading;

namespace EngineBridge.Internal
{
    /// <summary>
    /// The DEALER side of the ingress socket (protocol.md sections 3, 4 and 10): says <c>hello</c> on every
    /// connection, sends the queued events in <c>events</c> batches with several in flight, releases them from
    /// the queue as <c>ack</c>s come back, sends the queued session/flush/purchase requests in their place in
    /// the stream, and after a drop, a <c>hello_required</c> or a timeout resends everything unacknowledged.
    /// A purchase, whose reply the daemon holds up to 5 s for the verdict, does not hold back what follows it.
    /// The <c>welcome</c>'s limits are taken for the batches and the call-site checks; the <c>ack</c>s' provider
    /// refusals go to <see cref="ProviderRefusals"/>.
    /// </summary>
    internal sealed class IngressLink : Link
    {
        private const int IdleWaitMs = 10;
        private const int TransientPauseMs = 1000;
        private static readonly string[] PeerTypes = { "ROUTER" };

        private readonly EventQueue queue;
        private readonly Limits limits;
        private readonly ProviderRefusals refusals;
        private readonly DaemonProcess daemon;
        private readonly byte[] helloPairs;
        private readonly int helloPairCount;
        private readonly int window;
        private readonly int requestTimeoutMs;
        private readonly int settingsBatchEvents;
        private readonly MsgPackWriter frame = new MsgPackWriter(64 * 1024);
        private readonly List<InFlightBatch> inFlight = new List<InFlightBatch>();
        private readonly List<ControlRequest> heldReplies = new List<ControlRequest>();
        private bool welcomed;
        private uint nextRid;
        private uint helloRid;
        private long helloSentMs;
        private long pausedUntilMs;
        private int maxBatchEvents;
        private int maxBatchBytes;
        private long stored;
        private long duplicates;
        private long rejected;
        private volatile string daemonVersion;
        private volatile SessionInfo session;
        private volatile string lastRejection;

        /// <param name="helloPairs">the encoded fields of <c>hello</c> other than <c>type</c> and <c>rid</c></param>
        /// <param name="limits">the daemon's limits, updated at each <c>welcome</c></param>
        /// <param name="daemon">the daemon to launch while none answers, or null</param>
        public IngressLink(ZmtpEndpoint endpoint, EventQueue queue, Limits limits, ProviderRefusals refusals,
                           byte[] helloPairs, int helloPairCount, BridgeSettings settings, DaemonProcess daemon,
                           Action<ConnectionState, string> stateChanged)
            : base(endpoint, "DEALER", PeerTypes, "engine-bridge ingress", stateChanged)
        {
            this.queue = queue;
            this.limits = limits;
            this.refusals = refusals;
            this.daemon = daemon;
            this.helloPairs = helloPairs;
            this.helloPairCount = helloPairCount;
            window = settings.MaxInFlight;
            requestTimeoutMs = settings.RequestTimeoutMs;
            settingsBatchEvents = settings.MaxBatchEvents;
            TakeLimits();
        }

        public bool IsConnected { get { return State == ConnectionState.Connected; } }

        public string DaemonVersion { get { return daemonVersion; } }

        /// <summary>The session the daemon reported last (in <c>welcome</c> or a <c>session</c> reply).</summary>
        public SessionInfo Session
        {
            get { return session; }
            set { session = value; }
        }

        public void ReadCounters(ref BridgeStats stats)
        {
            stats.Stored = Interlocked.Read(ref stored);
            stats.Duplicates = Interlocked.Read(ref duplicates);
            stats.Rejected = Interlocked.Read(ref rejected);
            stats.Acknowledged = stats.Stored + stats.Duplicates + stats.Rejected;
            stats.Connected = IsConnected;
            stats.Reconnects = Math.Max(0, Connections - 1);
            stats.LastRejection = lastRejection;
            if (daemon != null)
            {
                stats.DaemonPid = daemon.Pid;
                if (daemon.LastFailure != null) stats.LastRejection = daemon.LastFailure;
            }
        }

        protected override void OnConnected()
        {
            if (daemon != null) daemon.OnConnected();
            SendHello();
        }

        protected override void WhileDisconnected()
        {
            if (daemon != null && daemon.MaybeLaunch()) RetrySoon();
        }

        protected override void OnDisconnected()
        {
            welcomed = false;
            Rewind();
            ResendHeld();
        }

        protected override int Work()
        {
            long now = Clock.Milliseconds;
            if (!welcomed)
            {
                if (now - helloSentMs > requestTimeoutMs) Drop("no welcome from the daemon at " + Endpoint + " in time", true, ConnectionState.Unreachable);
                return IdleWaitMs;
            }
            if (RequestTimedOut(now))
            {
                Drop("no reply from the daemon within " + requestTimeoutMs + " ms", false);
                return 0;
            }
            return now >= pausedUntilMs && SendPending() ? 0 : IdleWaitMs;
        }

        protected override void OnFrame(ZmtpFrame received)
        {
            WireReply reply;
            try
            {
                reply = new WireReply(MsgPackReader.DecodeMap(received.Buffer, received.Offset, received.Count));
            }
            catch (FormatException e)
            {
                LastError = "unreadable reply from the daemon: " + e.Message;
                return;
            }
            long rid = reply.Rid;
            if (!welcomed)
            {
                if (rid == helloRid) OnHelloReply(reply);
                return;
            }
            for (int i = 0; i < inFlight.Count; i++)
            {
                if (inFlight[i].Rid == rid)
                {
                    OnBatchReply(inFlight[i], reply);
                    return;
                }
            }
            var control = queue.PeekControl();
            if (control != null && control.InFlight && control.Rid == rid)
            {
                OnControlReply(control, reply);
                return;
            }
            for (int i = 0; i < heldReplies.Count; i++)
            {
                if (heldReplies[i].Rid == rid)
                {
                    OnControlReply(heldReplies[i], reply);
                    return;
                }
            }
            if (reply.IsError)
            {
                LastError = reply.ErrorCode + ": " + reply.ErrorMessage;
            }
        }

        private void SendHello()
        {
            helloRid = NextRid();
            helloSentMs = Clock.Milliseconds;
            frame.Reset();
            Wire.WriteRequest(frame, Wire.HelloType, helloRid, helloPairs, helloPairCount);
            Connection.Send(frame.Buffer, 0, frame.Length, false);
        }

        private void OnHelloReply(WireReply reply)
        {
            if (reply.IsError)
            {
                Drop("the daemon at " + Endpoint + " refused hello: " + reply.ErrorCode + ": " + reply.ErrorMessage, true,
                     ConnectionState.WrongPeer);
                return;
            }
            var announced = reply.GetMap("limits");
            if (announced != null)
            {
                limits.Apply(new WireReply(announced));
                TakeLimits();
            }
            daemonVersion = reply.GetString("daemon_version");
            var open = reply.GetMap("session");
            session = open != null ? new SessionInfo(open) : null;
            welcomed = true;
            OnAccepted("welcomed by engine-bridge " + daemonVersion + " at " + Endpoint);
        }

        /// <summary>
        /// The batch sizes under the daemon's limits: its event count (and this client's own setting), and its
        /// message size less room for the request's envelope. A batch exceeds the byte budget only when its single
        /// event does, and Track calls keep every event under <see cref="Limits.MaxEventBytes"/>.
        /// </summary>
        private void TakeLimits()
        {
            maxBatchEvents = Math.Min(settingsBatchEvents, limits.MaxBatchEvents);
            maxBatchBytes = limits.MaxMessageBytes - 1024;
        }

        /// <summary>Sends batches while the window has room, and the next request once the events before it are acknowledged.</summary>
        private bool SendPending()
        {
            bool sent = false;
            while (Connection != null)
            {
                var control = queue.PeekControl();
                if (control != null && control.InFlight) break;
                long limit = control != null ? control.AfterSequence : long.MaxValue;
                if (inFlight.Count < window && SendBatch(limit))
                {
                    sent = true;
                    continue;
                }
                if (control != null && Connection != null && queue.ReleasedBefore(control.AfterSequence))
                {
                    SendControl(control);
                    sent = true;
                    if (control.HeldReply && Connection != null)
                    {
                        queue.RemoveControl(control);
                        heldReplies.Add(control);
                        continue;
                    }
                }
                break;
            }
            return sent;
        }

        private bool SendBatch(long limit)
        {
            long first;
            int count = queue.ReserveBatch(limit, maxBatchEvents, maxBatchBytes, out first);
            if (count == 0) return false;
            uint rid = NextRid();
            frame.Reset();
            Wire.WriteEventsRequest(frame, rid, queue, first, count);
            inFlight.Add(new InFlightBatch(rid, first, count, Clock.Milliseconds));
            if (!Connection.Send(frame.Buffer, 0, frame.Length, false))
            {
                Drop("sending to the daemon failed", false);
                return false;
            }
            return true;
        }

        private void SendControl(ControlRequest control)
        {
            control.Rid = NextRid();
            control.InFlight = true;
            control.SentAtMs = Clock.Milliseconds;
            frame.Reset();
            Wire.WriteRequest(frame, control.Type, control.Rid, control.Pairs, control.PairCount);
            if (!Connection.Send(frame.Buffer, 0, frame.Length, false)) Drop("sending to the daemon failed", false);
        }

        private void OnBatchReply(InFlightBatch batch, WireReply reply)
        {
            if (reply.ErrorCode == "hello_required")
            {
                Rehello();
                return;
            }
            if (reply.IsError && reply.IsTransient)
            {
                LastError = reply.ErrorCode + ": " + reply.ErrorMessage + " (will resend)";
                Rewind();
                pausedUntilMs = Clock.Milliseconds + TransientPauseMs;
                return;
            }
            if (reply.IsError)
            {
                // The daemon refused the whole message and would refuse it again: its events are given up.
                LastError = lastRejection = reply.ErrorCode + ": " + reply.ErrorMessage;
                Interlocked.Add(ref rejected, batch.Count);
            }
            else
            {
                var rejections = reply.GetArray("rejected");
                int refused = rejections != null ? rejections.Length : 0;
                if (refused > 0)
                {
                    var last = rejections[refused - 1] as Dictionary<string, object>;
                    if (last != null)
                    {
                        var entry = new WireReply(last);
                        LastError = lastRejection = entry.GetString("code") + ": " + entry.GetString("message");
                    }
                }
                // Provider refusals first: once the counters show this ack, its refusals are posted too.
                refusals.AddFrom(reply);
                Interlocked.Add(ref stored, reply.GetLong("stored", 0));
                Interlocked.Add(ref duplicates, reply.GetLong("duplicates", 0));
                Interlocked.Add(ref rejected, refused);
            }
            batch.Acknowledged = true;
            while (inFlight.Count > 0 && inFlight[0].Acknowledged)
            {
                queue.Release(inFlight[0].First + inFlight[0].Count);
                inFlight.RemoveAt(0);
            }
        }

        private void OnControlReply(ControlRequest control, WireReply reply)
        {
            if (reply.ErrorCode == "hello_required")
            {
                Rehello();
                return;
            }
            control.InFlight = false;
            bool held = heldReplies.Remove(control);
            if (reply.IsError && reply.IsTransient)
            {
                pausedUntilMs = Clock.Milliseconds + TransientPauseMs;
                if (held) queue.RequeueControls(new List<ControlRequest> { control });
                return;
            }
            if (!held) queue.RemoveControl(control);
            control.Complete(reply);
        }

        /// <summary>The daemon forgot this connection: hello again, then resend everything unacknowledged.</summary>
        private void Rehello()
        {
            welcomed = false;
            Rewind();
            ResendHeld();
            SendHello();
        }

        /// <summary>The connection that would have carried their replies is gone: send those requests again.</summary>
        private void ResendHeld()
        {
            queue.RequeueControls(heldReplies);
            heldReplies.Clear();
        }

        private void Rewind()
        {
            inFlight.Clear();
            queue.RewindUnacknowledged();
        }

        private bool RequestTimedOut(long now)
        {
            if (inFlight.Count > 0 && now - inFlight[0].SentAtMs > requestTimeoutMs) return true;
            var control = queue.PeekControl();
            if (control != null && control.InFlight && now - control.SentAtMs > requestTimeoutMs) return true;
            for (int i = 0; i < heldReplies.Count; i++)
            {
                if (now - heldReplies[i].SentAtMs > requestTimeoutMs + Wire.PurchaseReplyWaitMs) return true;
            }
            return false;
        }

        private uint NextRid()
        {
            return unchecked(nextRid++);
        }

        private sealed class InFlightBatch
        {
            public readonly uint Rid;
            public readonly long First;
            public readonly int Count;
            public readonly long SentAtMs;
            public bool Acknowledged;

            public InFlightBatch(uint rid, long first, int count, long sentAtMs)
            {
                Rid = rid;
                First = first;
                Count = count;
                SentAtMs = sentAtMs;
            }
        }
    }
}
