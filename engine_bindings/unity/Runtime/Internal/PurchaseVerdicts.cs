using System;
using System.Collections.Generic;

namespace EngineBridge.Internal
{
    /// <summary>
    /// Takes purchase verdicts to the game (protocol.md 4.9 and 7). Each VerifyPurchase call's callback runs exactly
    /// once: with its reply when the reply is a verdict or an error, else (the reply said <c>pending</c>) with the
    /// verdict that appears later on the device's <c>purchase/&lt;device_id&gt;</c> topic. Verdicts on the topic
    /// for purchases this client did not ask about (made before a restart) go to the game-wide handlers, each id
    /// once; while no handler is attached they wait for one. Game code runs only through the callback queue.
    /// </summary>
    internal sealed class PurchaseVerdicts
    {
        private const string Prefix = "purchase/";

        private readonly CallbackQueue callbacks;
        private readonly object gate = new object();

        // This client's verify calls whose callback is not yet posted, by purchase id (an id may be verified twice).
        private readonly Dictionary<string, List<Call>> awaiting = new Dictionary<string, List<Call>>(StringComparer.Ordinal);

        // Ids whose verdict the game has been given: the topic repeats every recent verdict at each change.
        private readonly HashSet<string> reported = new HashSet<string>(StringComparer.Ordinal);

        // Verdicts for the handlers, oldest first, kept while no handler is attached. An id is never both here and
        // in `awaiting`: a verify call takes a verdict held here, and a verdict for an awaited id goes to its calls.
        private readonly List<PurchaseResult> unclaimed = new List<PurchaseResult>();
        private Action<PurchaseResult> handlers;

        public PurchaseVerdicts(string deviceId, CallbackQueue callbacks)
        {
            Topic = Prefix + deviceId;
            this.callbacks = callbacks;
        }

        /// <summary>The device's verdicts topic, <c>purchase/&lt;device_id&gt;</c>.</summary>
        public string Topic { get; private set; }

        /// <summary>
        /// A verify call about to be sent. A verdict already known for its id (held for the handlers) settles it at
        /// the next pump; otherwise it waits for its reply or the topic.
        /// </summary>
        public Call Expect(string id, PurchaseStore store, Action<PurchaseResult> callback)
        {
            var call = new Call(this, id, store, callback);
            lock (gate)
            {
                int known = IndexOfUnclaimed(id);
                if (known >= 0)
                {
                    var verdict = unclaimed[known];
                    unclaimed.RemoveAt(known);
                    reported.Add(id);
                    Post(call, verdict);
                    return call;
                }
                List<Call> calls;
                if (!awaiting.TryGetValue(id, out calls)) awaiting[id] = calls = new List<Call>(1);
                calls.Add(call);
            }
            return call;
        }

        /// <summary>One publication of <see cref="Topic"/>.</summary>
        /// <remarks>
        /// Every publication is read, whatever its <c>version</c>: a verdict never changes once given, so reading
        /// an older copy again costs nothing, while skipping one (a daemon whose store was replaced restarts its
        /// versions) could leave a callback waiting forever.
        /// </remarks>
        public void Apply(WireReply publication)
        {
            var values = publication.GetMap("values");
            if (values == null) return;
            var verdicts = new List<PurchaseResult>(values.Count);
            foreach (var entry in values)
            {
                var fields = entry.Value as Dictionary<string, object>;
                var verdict = fields != null ? Verdict(entry.Key, null, new WireReply(fields), true) : null;
                if (verdict != null) verdicts.Add(verdict);
            }
            verdicts.Sort((a, b) => (a.VerifiedAtMs ?? 0).CompareTo(b.VerifiedAtMs ?? 0));
            lock (gate)
            {
                foreach (var verdict in verdicts)
                {
                    List<Call> calls;
                    if (awaiting.TryGetValue(verdict.Id, out calls))
                    {
                        awaiting.Remove(verdict.Id);
                        reported.Add(verdict.Id);
                        foreach (var call in calls) Post(call, verdict);
                    }
                    else if (!reported.Contains(verdict.Id) && IndexOfUnclaimed(verdict.Id) < 0)
                    {
                        Claim(verdict);
                    }
                }
            }
        }

        public void AddHandler(Action<PurchaseResult> handler)
        {
            lock (gate)
            {
                handlers += handler;
                if (handlers == null || unclaimed.Count == 0) return;
                var held = unclaimed.ToArray();
                unclaimed.Clear();
                foreach (var verdict in held) Claim(verdict);
            }
        }

        public void RemoveHandler(Action<PurchaseResult> handler)
        {
            lock (gate) handlers -= handler;
        }

        /// <summary>A verdict for the handlers, under the gate: reported at the next pump, or kept until one is attached.</summary>
        private void Claim(PurchaseResult verdict)
        {
            if (handlers == null)
            {
                unclaimed.Add(verdict);
                return;
            }
            reported.Add(verdict.Id);
            callbacks.Post(delegate { DeliverToHandlers(verdict); });
        }

        /// <summary>
        /// On the pump thread. A verify call for the same id made since the verdict arrived takes it instead (the game
        /// hears of each id once); with every handler removed meanwhile, the verdict waits for the next one.
        /// </summary>
        private void DeliverToHandlers(PurchaseResult verdict)
        {
            Action<PurchaseResult> current;
            lock (gate)
            {
                List<Call> calls;
                if (awaiting.TryGetValue(verdict.Id, out calls))
                {
                    awaiting.Remove(verdict.Id);
                    foreach (var call in calls) Post(call, verdict);
                    return;
                }
                current = handlers;
                if (current == null)
                {
                    reported.Remove(verdict.Id);
                    unclaimed.Add(verdict);
                    return;
                }
            }
            current(verdict);
        }

        /// <summary>The daemon's reply to a call (or this side's failure), on the ingress thread.</summary>
        private void OnReply(Call call, WireReply reply)
        {
            PurchaseResult result;
            if (reply.IsError)
            {
                result = new PurchaseResult(call.Id, call.Store, reply.ErrorCode, reply.ErrorMessage, false, false, null, null);
            }
            else
            {
                // `pending` (or a reply without a verdict): stored by the daemon; the verdict will come on the topic.
                if (reply.GetString("state") != "verified") return;
                result = Verdict(call.Id, call.Store, reply, false);
                if (result == null) return;
            }
            lock (gate)
            {
                List<Call> calls;
                if (!awaiting.TryGetValue(call.Id, out calls) || !calls.Remove(call)) return;   // the topic was first
                if (calls.Count == 0) awaiting.Remove(call.Id);
                if (result.Ok) reported.Add(call.Id);
                Post(call, result);
            }
        }

        private void Post(Call call, PurchaseResult result)
        {
            callbacks.Post(delegate { call.Callback(result); });
        }

        private int IndexOfUnclaimed(string id)
        {
            for (int i = 0; i < unclaimed.Count; i++)
            {
                if (unclaimed[i].Id == id) return i;
            }
            return -1;
        }

        /// <summary>
        /// A verdict read from a reply or a topic entry (<c>is_valid</c>, <c>is_duplicate</c>, <c>reason</c>, and on the
        /// topic <c>store</c> and <c>verified_at</c>); null if it holds none.
        /// </summary>
        private static PurchaseResult Verdict(string id, PurchaseStore? store, WireReply fields, bool fromTopic)
        {
            bool? valid = fields.GetBool("is_valid");
            if (!valid.HasValue) return null;
            long? verifiedAt = null;
            if (fromTopic)
            {
                int named = Array.IndexOf(Wire.PurchaseStoreNames, fields.GetString("store"));
                store = named >= 0 ? (PurchaseStore?)named : null;
                long at = fields.GetLong("verified_at", -1);
                if (at >= 0) verifiedAt = at;
            }
            return new PurchaseResult(id, store, null, null, valid.Value, fields.GetBool("is_duplicate") ?? false,
                                      fields.GetString("reason"), verifiedAt);
        }

        /// <summary>One VerifyPurchase call: its id, its store and the game's callback.</summary>
        internal sealed class Call
        {
            private readonly PurchaseVerdicts owner;
            public readonly string Id;
            public readonly PurchaseStore Store;
            public readonly Action<PurchaseResult> Callback;

            public Call(PurchaseVerdicts owner, string id, PurchaseStore store, Action<PurchaseResult> callback)
            {
                this.owner = owner;
                Id = id;
                Store = store;
                Callback = callback;
            }

            /// <summary>Hands the request's reply over; the request's completion callback.</summary>
            public void OnReply(WireReply reply)
            {
                owner.OnReply(this, reply);
            }
        }
    }
}
