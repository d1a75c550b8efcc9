using System;
using System.Collections.Generic;
using System.Globalization;

namespace EngineBridge
{
    /// <summary>
    /// The game's config values at one moment, merged from the daemon's topics in the protocol's order
    /// (<c>config/local</c>, then <c>config/gameramp/&lt;device_id&gt;</c>, then <c>config/gameanalytics</c>:
    /// the first that has a key wins). Immutable: a change produces a new snapshot, so a game may keep one
    /// and read it from any thread. The typed getters return the default when a key is absent or its value
    /// cannot be read as that type; text values are parsed (GameAnalytics sends every value as a string).
    /// </summary>
    public sealed class ConfigSnapshot
    {
        /// <summary>Before the daemon has published anything.</summary>
        public static readonly ConfigSnapshot Empty =
            new ConfigSnapshot(new Dictionary<string, object>(), new Dictionary<string, long>());

        private readonly Dictionary<string, object> values;
        private readonly Dictionary<string, long> versions;

        internal ConfigSnapshot(Dictionary<string, object> values, Dictionary<string, long> versions)
        {
            this.values = values;
            this.versions = versions;
        }

        /// <summary>True once at least one config topic has arrived from the daemon.</summary>
        public bool Received { get { return versions.Count > 0; } }

        public int Count { get { return values.Count; } }

        public IEnumerable<string> Keys { get { return values.Keys; } }

        public bool Contains(string key)
        {
            return key != null && values.ContainsKey(key);
        }

        /// <summary>The topic's version as last received (it grows by one at each change), or 0.</summary>
        public long TopicVersion(string topic)
        {
            long version;
            return topic != null && versions.TryGetValue(topic, out version) ? version : 0;
        }

        /// <summary>The raw value: null, bool, long, double, string, byte[], object[] or a string-keyed dictionary.</summary>
        public bool TryGetValue(string key, out object value)
        {
            if (key == null) throw new ArgumentNullException("key");
            return values.TryGetValue(key, out value);
        }

        public string GetString(string key, string defaultValue)
        {
            object value;
            if (!TryGetValue(key, out value) || value == null) return defaultValue;
            var text = value as string;
            if (text != null) return text;
            if (value is bool) return (bool)value ? "true" : "false";
            var formattable = value as IFormattable;
            return formattable != null ? formattable.ToString(null, CultureInfo.InvariantCulture) : defaultValue;
        }

        public long GetLong(string key, long defaultValue)
        {
            object value;
            if (!TryGetValue(key, out value)) return defaultValue;
            if (value is long) return (long)value;
            if (value is double)
            {
                double d = (double)value;
                return d == Math.Floor(d) && d >= long.MinValue && d <= long.MaxValue ? (long)d : defaultValue;
            }
            long parsed;
            var text = value as string;
            return text != null && long.TryParse(text.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out parsed)
                ? parsed : defaultValue;
        }

        public int GetInt(string key, int defaultValue)
        {
            long value = GetLong(key, long.MinValue);
            return value >= int.MinValue && value <= int.MaxValue ? (int)value : defaultValue;
        }

        public double GetDouble(string key, double defaultValue)
        {
            object value;
            if (!TryGetValue(key, out value)) return defaultValue;
            if (value is double) return (double)value;
            if (value is long) return (long)value;
            double parsed;
            var text = value as string;
            return text != null && double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out parsed)
                ? parsed : defaultValue;
        }

        public bool GetBool(string key, bool defaultValue)
        {
            object value;
            if (!TryGetValue(key, out value)) return defaultValue;
            if (value is bool) return (bool)value;
            if (value is long) return (long)value != 0;
            var text = value as string;
            if (text == null) return defaultValue;
            text = text.Trim();
            if (text == "1" || string.Equals(text, "true", StringComparison.OrdinalIgnoreCase)) return true;
            if (text == "0" || string.Equals(text, "false", StringComparison.OrdinalIgnoreCase)) return false;
            return defaultValue;
        }
    }
}
