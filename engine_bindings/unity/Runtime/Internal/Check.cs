using System;
using System.Collections;
using System.Collections.Generic;

namespace EngineBridge.Internal
{
    /// <summary>
    /// Argument checks run at the call site, before anything is queued, so a bad call fails at once with an
    /// ArgumentException naming the parameter instead of being refused by the daemon later. The checks follow
    /// protocol.md sections 4 and 5, within the daemon's <see cref="Limits"/>; none allocates unless it throws.
    /// </summary>
    internal static class Check
    {
        public static void NotNull(object value, string name)
        {
            if (value == null) throw new ArgumentNullException(name);
        }

        /// <summary>A required string of <paramref name="minChars"/> to <paramref name="maxChars"/> chars.</summary>
        public static void Text(string value, string name, int minChars, int maxChars)
        {
            if (value == null) throw new ArgumentNullException(name);
            if (value.Length < minChars || value.Length > maxChars)
            {
                throw new ArgumentException(name + " must be " + minChars + " to " + maxChars + " chars long, got "
                                            + value.Length, name);
            }
        }

        /// <summary>An optional string: null, or at most <paramref name="maxChars"/> chars.</summary>
        public static void OptionalText(string value, string name, int maxChars)
        {
            if (value != null) Text(value, name, 0, maxChars);
        }

        /// <summary>One part of a ':'-joined event id: 1 to 64 chars, without ':'.</summary>
        public static void Part(Limits limits, string value, string name)
        {
            Text(value, name, 1, Wire.MaxPartChars);
            if (value.IndexOf(':') >= 0) throw new ArgumentException(name + " must not contain ':' (\"" + value + "\")", name);
        }

        /// <summary>An event id of 1 to <paramref name="maxParts"/> parts of 1 to 64 chars joined by ':'.</summary>
        public static void EventId(Limits limits, string value, string name, int maxParts)
        {
            Text(value, name, 1, limits.MaxStringChars);
            int parts = 1;
            int partStart = 0;
            for (int i = 0; i <= value.Length; i++)
            {
                if (i < value.Length && value[i] != ':') continue;
                if (i == partStart) throw new ArgumentException(name + " has an empty part (\"" + value + "\")", name);
                if (i - partStart > Wire.MaxPartChars)
                {
                    throw new ArgumentException(name + " has a part of " + (i - partStart) + " chars; every part must be 1 to "
                                                + Wire.MaxPartChars + " chars (\"" + Clip(value) + "\")", name);
                }
                if (i < value.Length) parts++;
                partStart = i + 1;
            }
            if (parts > maxParts)
            {
                throw new ArgumentException(name + " has " + parts + " parts; at most " + maxParts + " are allowed", name);
            }
        }

        /// <summary>
        /// The event_id of a generic <see cref="BridgeClient.Track"/> event, as the C++ binding checks it: parts of 1 to 64
        /// chars joined by ':'; design 1 to 5 parts, business itemType:itemId, progression Start|Fail|Complete then 1 to
        /// 3 parts, resource Source|Sink:currency:itemType:itemId.
        /// </summary>
        public static void JoinedId(EventCategory category, IDictionary<string, object> fields, string name)
        {
            object value;
            string id = fields.TryGetValue("event_id", out value) ? value as string : null;
            if (id == null) return;   // RequiredFields has refused a missing event_id where one is required
            var parts = id.Split(':');
            foreach (string part in parts)
            {
                if (part.Length < 1 || part.Length > Wire.MaxPartChars)
                {
                    throw new ArgumentException(name + "[\"event_id\"] \"" + Clip(id) + "\": every part must be 1 to "
                                                + Wire.MaxPartChars + " chars", name);
                }
            }
            string rule = null;
            switch (category)
            {
                case EventCategory.Design:
                    if (parts.Length > 5) rule = "1 to 5 parts joined by ':'";
                    break;
                case EventCategory.Business:
                    if (parts.Length != 2) rule = "itemType:itemId";
                    break;
                case EventCategory.Progression:
                    if (parts.Length < 2 || parts.Length > 4 || (parts[0] != "Start" && parts[0] != "Fail" && parts[0] != "Complete"))
                        rule = "Start|Fail|Complete then 1 to 3 parts";
                    break;
                case EventCategory.Resource:
                    if (parts.Length != 4 || (parts[0] != "Source" && parts[0] != "Sink")) rule = "Source|Sink:currency:itemType:itemId";
                    break;
            }
            if (rule != null) throw new ArgumentException(name + "[\"event_id\"] \"" + Clip(id) + "\" must be " + rule, name);
        }

        private static string Clip(string value)
        {
            return value.Length <= 200 ? value : value.Substring(0, 200);
        }

        /// <summary>A client-chosen event or purchase id: 1 to max_event_id_chars of A–Z a–z 0–9 - _ . : (protocol.md section 5).</summary>
        public static void EventUid(Limits limits, string value, string name)
        {
            Text(value, name, 1, limits.MaxEventIdChars);
            foreach (char c in value)
            {
                bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                          || c == '-' || c == '_' || c == '.' || c == ':';
                if (!ok) throw new ArgumentException(name + " may hold only A-Z a-z 0-9 - _ . : (\"" + value + "\")", name);
            }
        }

        /// <summary>
        /// Standard base64 of 1 to <paramref name="maxChars"/> chars (A–Z a–z 0–9 + /, padded with = to a multiple of 4),
        /// as protocol.md 4.9 asks of receipts and signatures: the verifying store refuses anything else.
        /// </summary>
        public static void Base64(string value, string name, int maxChars)
        {
            Text(value, name, 1, maxChars);
            bool ok = value.Length % 4 == 0;
            int padding = 0;
            for (int i = 0; ok && i < value.Length; i++)
            {
                char c = value[i];
                if (c == '=')
                {
                    padding++;
                    ok = padding <= 2;
                }
                else
                {
                    ok = padding == 0 && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/');
                }
            }
            if (!ok) throw new ArgumentException(name + " must be standard base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4)", name);
        }

        /// <summary>The length of parts about to be joined by ':' (each null part counts as absent).</summary>
        public static void JoinedLength(Limits limits, int chars, string name)
        {
            if (chars > limits.MaxStringChars)
            {
                throw new ArgumentException("the parts of " + name + " join to " + chars + " chars; the limit is "
                                            + limits.MaxStringChars, name);
            }
        }

        public static int PartChars(string part)
        {
            return part == null ? 0 : part.Length + 1;
        }

        public static void Finite(double value, string name)
        {
            if (double.IsNaN(value) || double.IsInfinity(value))
            {
                throw new ArgumentException(name + " must be a finite number, got " + value, name);
            }
        }

        public static void AtLeast(long value, long minimum, string name)
        {
            if (value < minimum) throw new ArgumentOutOfRangeException(name, value, name + " must be at least " + minimum);
        }

        /// <summary>An enum value inside its declared range (a cast can produce any int).</summary>
        public static void Defined(int value, int count, string name)
        {
            if (value < 0 || value >= count) throw new ArgumentOutOfRangeException(name, value, name + " is not a defined value");
        }

        /// <summary>An ISO 4217 code: three letters A-Z.</summary>
        public static void Currency(string value, string name)
        {
            if (value == null) throw new ArgumentNullException(name);
            if (value.Length != 3 || !IsUpper(value[0]) || !IsUpper(value[1]) || !IsUpper(value[2]))
            {
                throw new ArgumentException(name + " must be an ISO 4217 code of three capital letters, got \"" + value + "\"", name);
            }
        }

        /// <summary>
        /// A map of event fields or metadata: string keys of 1 to 64 chars, within the daemon's limits of entries per
        /// map or list, levels of nesting and chars per string; finite numbers, encodable types.
        /// </summary>
        public static void Fields(Limits limits, IDictionary<string, object> fields, string name)
        {
            if (fields == null) throw new ArgumentNullException(name);
            CheckMapSize(limits, fields.Count, name, name);
            foreach (var entry in fields)
            {
                CheckKey(entry.Key, name, name);
                Value(limits, entry.Value, name + "." + entry.Key, 1, name);
            }
        }

        /// <summary>
        /// A map that is the value of one of an event's fields (an impression's <c>impression_data</c>): checked as a
        /// map inside <c>fields</c> is, its entries one level deeper than the event's fields.
        /// </summary>
        public static void FieldMap(Limits limits, IDictionary<string, object> map, string name)
        {
            if (map == null) throw new ArgumentNullException(name);
            if (limits.MaxDepth <= 1) throw new ArgumentException(name + " is nested deeper than " + limits.MaxDepth + " levels", name);
            CheckMapSize(limits, map.Count, name, name);
            foreach (var entry in map)
            {
                CheckKey(entry.Key, name, name);
                Value(limits, entry.Value, name + "." + entry.Key, 2, name);
            }
        }

        /// <summary>The fields the daemon requires for a category are present, with the right kind of value.</summary>
        public static void RequiredFields(EventCategory category, IDictionary<string, object> fields, string name)
        {
            foreach (var required in Required[(int)category])
            {
                object value;
                if (!fields.TryGetValue(required.Key, out value) || value == null)
                {
                    throw new ArgumentException(name + " needs \"" + required.Key + "\" for a "
                                                + Wire.CategoryNames[(int)category] + " event", name);
                }
                bool ok;
                switch (required.Value)
                {
                    case Kind.Text: ok = value is string; break;
                    case Kind.Integer: ok = IsInteger(value); break;
                    case Kind.Map: ok = value is IDictionary; break;
                    default: ok = IsInteger(value) || value is double || value is float; break;
                }
                if (!ok)
                {
                    throw new ArgumentException(name + "[\"" + required.Key + "\"] must be " + KindNames[(int)required.Value]
                                                + ", got " + value.GetType().Name, name);
                }
            }
        }

        private enum Kind
        {
            Text,
            Integer,
            Number,
            Map,
        }

        private static readonly string[] KindNames = { "a string", "an integer", "a number", "a map" };

        /// <summary>protocol.md section 5: required fields per category, indexed by <see cref="EventCategory"/>.</summary>
        private static readonly KeyValuePair<string, Kind>[][] Required =
        {
            new[] { Field("event_id", Kind.Text) },
            new[] { Field("event_id", Kind.Text), Field("amount", Kind.Integer), Field("currency", Kind.Text) },
            new[] { Field("event_id", Kind.Text) },
            new[] { Field("event_id", Kind.Text), Field("amount", Kind.Number) },
            new[] { Field("severity", Kind.Text), Field("message", Kind.Text) },
            new[]
            {
                Field("ad_action", Kind.Text), Field("ad_type", Kind.Text), Field("ad_sdk_name", Kind.Text),
                Field("ad_placement", Kind.Text),
            },
            new[] { Field(Wire.NameField, Kind.Text) },
            new[]
            {
                Field("ad_network_name", Kind.Text), Field("ad_network_version", Kind.Text),
                Field("impression_data", Kind.Map),
            },
        };

        private static KeyValuePair<string, Kind> Field(string key, Kind kind)
        {
            return new KeyValuePair<string, Kind>(key, kind);
        }

        private static void Value(Limits limits, object value, string path, int depth, string name)
        {
            if (value is ulong && (ulong)value > long.MaxValue)
            {
                throw new ArgumentException(path + " is " + value + ", beyond the signed 64-bit range the protocol allows", name);
            }
            if (value == null || value is bool || IsInteger(value) || value is byte[]) return;
            var text = value as string;
            if (text != null)
            {
                if (text.Length > limits.MaxStringChars)
                {
                    throw new ArgumentException(path + " is " + text.Length + " chars; the limit is " + limits.MaxStringChars, name);
                }
                return;
            }
            if (value is double || value is float)
            {
                double number = Convert.ToDouble(value);
                if (double.IsNaN(number) || double.IsInfinity(number))
                {
                    throw new ArgumentException(path + " must be a finite number, got " + number, name);
                }
                return;
            }
            var map = value as IDictionary;
            var list = value as IList;
            if (map == null && list == null)
            {
                throw new ArgumentException(path + " has type " + value.GetType().FullName
                                            + ", which cannot be sent (use bool, numbers, string, byte[], maps, lists)", name);
            }
            if (depth >= limits.MaxDepth)
            {
                throw new ArgumentException(path + " is nested deeper than " + limits.MaxDepth + " levels", name);
            }
            if (map != null)
            {
                CheckMapSize(limits, map.Count, path, name);
                foreach (DictionaryEntry entry in map)
                {
                    var key = entry.Key as string;
                    if (key == null) throw new ArgumentException(path + " has a key that is not a string", name);
                    CheckKey(key, path, name);
                    Value(limits, entry.Value, path + "." + key, depth + 1, name);
                }
                return;
            }
            CheckMapSize(limits, list.Count, path, name);
            for (int i = 0; i < list.Count; i++) Value(limits, list[i], path + "[" + i + "]", depth + 1, name);
        }

        private static void CheckKey(string key, string path, string name)
        {
            if (key == null || key.Length < 1 || key.Length > Wire.MaxFieldNameChars)
            {
                throw new ArgumentException("field names in " + path + " must be 1 to " + Wire.MaxFieldNameChars
                                            + " chars, got \"" + key + "\"", name);
            }
        }

        private static void CheckMapSize(Limits limits, int count, string path, string name)
        {
            if (count > limits.MaxFields)
            {
                throw new ArgumentException(path + " holds " + count + " entries; the limit is " + limits.MaxFields, name);
            }
        }

        private static bool IsInteger(object value)
        {
            return value is int || value is long || value is short || value is sbyte
                || value is uint || value is ulong || value is ushort || value is byte;
        }

        private static bool IsUpper(char c)
        {
            return c >= 'A' && c <= 'Z';
        }
    }
}
