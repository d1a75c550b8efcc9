using System;
using System.Collections.Generic;

namespace EngineBridge.Internal
{
    /// <summary>
    /// The config topics this device reads, at their highest version, merged into the current
    /// <see cref="ConfigSnapshot"/>; tells subscribers about changes through the callback queue.
    /// </summary>
    internal sealed class ConfigStore
    {
        public const string Prefix = "config/";

        private readonly string[] precedence;
        private readonly CallbackQueue callbacks;
        private readonly object gate = new object();
        private readonly Dictionary<string, KeyValuePair<long, Dictionary<string, object>>> topics =
            new Dictionary<string, KeyValuePair<long, Dictionary<string, object>>>();
        private readonly List<Subscription> subscribers = new List<Subscription>();
        private volatile ConfigSnapshot current = ConfigSnapshot.Empty;

        public ConfigStore(string deviceId, CallbackQueue callbacks)
        {
            precedence = new[] { "config/local", "config/gameramp/" + deviceId, "config/gameanalytics" };
            this.callbacks = callbacks;
        }

        public ConfigSnapshot Current { get { return current; } }

        /// <summary>
        /// Takes one publication (protocol.md section 7). Topics for other devices and versions no newer than
        /// the one held are ignored: the same version may arrive twice.
        /// </summary>
        public void Apply(string topic, Reply publication)
        {
            if (Array.IndexOf(precedence, topic) < 0) return;
            long version = publication.GetLong("version", -1);
            var values = publication.GetMap("values");
            if (version < 0 || values == null) return;
            ConfigSnapshot snapshot;
            Subscription[] targets;
            lock (gate)
            {
                KeyValuePair<long, Dictionary<string, object>> held;
                if (topics.TryGetValue(topic, out held) && held.Key >= version) return;
                topics[topic] = new KeyValuePair<long, Dictionary<string, object>>(version, values);
                snapshot = current = Merge();
                targets = subscribers.ToArray();
            }
            foreach (var target in targets) Deliver(target, snapshot);
        }

        /// <summary>Adds a subscriber; if configs have already arrived it gets the current snapshot at the next pump.</summary>
        public IDisposable Subscribe(Action<ConfigSnapshot> onChange)
        {
            var subscription = new Subscription(this, onChange);
            ConfigSnapshot snapshot;
            lock (gate)
            {
                subscribers.Add(subscription);
                snapshot = current;
            }
            if (snapshot.Received) Deliver(subscription, snapshot);
            return subscription;
        }

        private void Deliver(Subscription target, ConfigSnapshot snapshot)
        {
            callbacks.Post(delegate { target.Invoke(snapshot); });
        }

        private ConfigSnapshot Merge()
        {
            var merged = new Dictionary<string, object>();
            var versions = new Dictionary<string, long>();
            for (int i = precedence.Length - 1; i >= 0; i--)
            {
                KeyValuePair<long, Dictionary<string, object>> held;
                if (!topics.TryGetValue(precedence[i], out held)) continue;
                versions[precedence[i]] = held.Key;
                foreach (var entry in held.Value) merged[entry.Key] = entry.Value;
            }
            return new ConfigSnapshot(merged, versions);
        }

        private void Remove(Subscription subscription)
        {
            lock (gate) subscribers.Remove(subscription);
        }

        /// <summary>Dispose to stop the callbacks; one already queued for the pump is skipped.</summary>
        private sealed class Subscription : IDisposable
        {
            private readonly ConfigStore owner;
            private readonly Action<ConfigSnapshot> onChange;
            private volatile bool active = true;

            public Subscription(ConfigStore owner, Action<ConfigSnapshot> onChange)
            {
                this.owner = owner;
                this.onChange = onChange;
            }

            public void Invoke(ConfigSnapshot snapshot)
            {
                if (active) onChange(snapshot);
            }

            public void Dispose()
            {
                active = false;
                owner.Remove(this);
            }
        }
    }
}
