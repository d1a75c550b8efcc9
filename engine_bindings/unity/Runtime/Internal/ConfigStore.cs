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
        public void Apply(string topic, WireReply publication)
        {
            if (Array.IndexOf(precedence, topic) < 0) return;
            long version = publication.GetLong("version", -1);
            var values = publication.GetMap("values");
            if (version < 0 || values == null) return;
            lock (gate)
            {
                KeyValuePair<long, Dictionary<string, object>> held;
                if (topics.TryGetValue(topic, out held) && held.Key >= version) return;
                topics[topic] = new KeyValuePair<long, Dictionary<string, object>>(version, values);
                current = Merge();
                foreach (var subscriber in subscribers) subscriber.Offer(current);
            }
        }

        /// <summary>Every change as a whole snapshot; the current one at the next pump if configs have arrived.</summary>
        public IDisposable Subscribe(Action<ConfigSnapshot> onChange)
        {
            return Add(new SnapshotSubscription(this, onChange));
        }

        /// <summary>Changes of one key's value (null once no topic has it); its current value at the next pump if known.</summary>
        public IDisposable Subscribe(string key, Action<string, object> onChange)
        {
            return Add(new KeySubscription(this, key, onChange));
        }

        private Subscription Add(Subscription subscription)
        {
            lock (gate)
            {
                subscribers.Add(subscription);
                if (current.Received) subscription.Offer(current);
            }
            return subscription;
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
        private abstract class Subscription : IDisposable
        {
            private readonly ConfigStore owner;
            private volatile bool active = true;

            protected Subscription(ConfigStore owner)
            {
                this.owner = owner;
            }

            /// <summary>A new snapshot, under the store's lock: post a callback if this subscriber cares.</summary>
            public abstract void Offer(ConfigSnapshot snapshot);

            public void Dispose()
            {
                active = false;
                owner.Remove(this);
            }

            protected void Post(Action callback)
            {
                owner.callbacks.Post(delegate { if (active) callback(); });
            }
        }

        private sealed class SnapshotSubscription : Subscription
        {
            private readonly Action<ConfigSnapshot> onChange;

            public SnapshotSubscription(ConfigStore owner, Action<ConfigSnapshot> onChange) : base(owner)
            {
                this.onChange = onChange;
            }

            public override void Offer(ConfigSnapshot snapshot)
            {
                Post(delegate { onChange(snapshot); });
            }
        }

        private sealed class KeySubscription : Subscription
        {
            private readonly string key;
            private readonly Action<string, object> onChange;
            private bool delivered;
            private object last;

            public KeySubscription(ConfigStore owner, string key, Action<string, object> onChange) : base(owner)
            {
                this.key = key;
                this.onChange = onChange;
            }

            public override void Offer(ConfigSnapshot snapshot)
            {
                object value;
                bool present = snapshot.TryGetValue(key, out value);
                if (!present && !delivered) return;
                if (delivered && ValueEquals(last, value)) return;
                delivered = true;
                last = value;
                Post(delegate { onChange(key, value); });
            }
        }

        /// <summary>Structural equality of decoded msgpack values (a republished topic carries new objects).</summary>
        private static bool ValueEquals(object a, object b)
        {
            if (a == null || b == null) return a == b;
            var listA = a as object[];
            var listB = b as object[];
            if (listA != null || listB != null)
            {
                if (listA == null || listB == null || listA.Length != listB.Length) return false;
                for (int i = 0; i < listA.Length; i++)
                {
                    if (!ValueEquals(listA[i], listB[i])) return false;
                }
                return true;
            }
            var mapA = a as Dictionary<string, object>;
            var mapB = b as Dictionary<string, object>;
            if (mapA != null || mapB != null)
            {
                if (mapA == null || mapB == null || mapA.Count != mapB.Count) return false;
                foreach (var entry in mapA)
                {
                    object other;
                    if (!mapB.TryGetValue(entry.Key, out other) || !ValueEquals(entry.Value, other)) return false;
                }
                return true;
            }
            var bytesA = a as byte[];
            var bytesB = b as byte[];
            if (bytesA != null || bytesB != null)
            {
                if (bytesA == null || bytesB == null || bytesA.Length != bytesB.Length) return false;
                for (int i = 0; i < bytesA.Length; i++)
                {
                    if (bytesA[i] != bytesB[i]) return false;
                }
                return true;
            }
            return a.Equals(b);
        }
    }
}
