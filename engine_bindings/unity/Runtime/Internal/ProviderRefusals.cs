using System;
using System.Collections.Generic;
using System.Threading;

namespace EngineBridge.Internal
{
    /// <summary>
    /// Provider refusals from the acks (<see cref="ProviderRefusal"/>): counted for the stats, handed one by one to
    /// the game's <see cref="BridgeClient.ProviderRefused"/> handlers, and written to the engine's console as a
    /// warning, at most one per interval: the first at once, the ones after it summed up in one warning when the
    /// interval is over, so a call made every frame cannot flood the console.
    /// </summary>
    internal sealed class ProviderRefusals
    {
        private readonly CallbackQueue callbacks;
        private readonly ConsoleLog log;
        private readonly int intervalMs;
        private readonly object gate = new object();
        private volatile Action<ProviderRefusal> handlers;
        private long count;
        private long lastWarningMs;
        private bool warned;
        private volatile int heldBack;
        private ProviderRefusal latest;

        public ProviderRefusals(CallbackQueue callbacks, ConsoleLog log, int intervalMs)
        {
            this.callbacks = callbacks;
            this.log = log;
            this.intervalMs = intervalMs;
        }

        /// <summary>Refusals seen since the client started.</summary>
        public long Count { get { return Interlocked.Read(ref count); } }

        public void AddHandler(Action<ProviderRefusal> handler)
        {
            lock (gate) handlers += handler;
        }

        public void RemoveHandler(Action<ProviderRefusal> handler)
        {
            lock (gate) handlers -= handler;
        }

        /// <summary>The entries of an ack's <c>invalid</c> (events stored that a provider's rules refuse); on the ingress thread.</summary>
        public void AddFrom(WireReply ack)
        {
            var invalid = ack.GetArray("invalid");
            if (invalid == null) return;
            foreach (object item in invalid)
            {
                var fields = item as Dictionary<string, object>;
                if (fields == null) continue;
                var entry = new WireReply(fields);
                Add(new ProviderRefusal(entry.GetString("id"), entry.GetString("provider"), entry.GetString("message")));
            }
        }

        private void Add(ProviderRefusal refusal)
        {
            Interlocked.Increment(ref count);
            callbacks.Post(delegate
            {
                var current = handlers;
                if (current != null) current(refusal);
            });
            lock (gate)
            {
                long now = Clock.Milliseconds;
                if (!warned || now - lastWarningMs >= intervalMs)
                {
                    Warn(now, Describe(refusal));
                    return;
                }
                heldBack++;
                latest = refusal;
            }
        }

        /// <summary>At every pump: once the interval is over, the warning that sums up the refusals held back.</summary>
        public void Tick()
        {
            if (heldBack == 0) return;
            lock (gate)
            {
                long now = Clock.Milliseconds;
                if (heldBack == 0 || now - lastWarningMs < intervalMs) return;
                Warn(now, heldBack + " more events refused by providers since the last warning (GetStats().ProviderRefusals counts"
                          + " them all); the latest: " + Describe(latest));
            }
        }

        private void Warn(long now, string message)
        {
            log.Write(BridgeLogLevel.Warning, message);
            warned = true;
            lastWarningMs = now;
            heldBack = 0;
            latest = null;
        }

        private static string Describe(ProviderRefusal refusal)
        {
            return refusal + ". The daemon stored it and keeps it as a dead letter for " + refusal.Provider
                   + " (engine-bridge dead-letters); fix the call that made it.";
        }
    }
}
