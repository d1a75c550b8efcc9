// The Unity binding against the shared conformance vectors (engine_bindings/conformance/vectors.json, whose README
// says what each section asks of a binding): its msgpack writer and reader byte for byte, its request builders, its
// reply and publication parsers, its limits and its call-site checks. No daemon: tests/bindings/test_unity.py runs
// this program with the file's path. Prints one line per check and ends with "N passed, N failed"; a vector this
// binding never builds is listed with "-" and the reason.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;
using EngineBridge;
using EngineBridge.Internal;
using static Checks;

internal static class ConformanceTests
{
    // Requests no call of this binding makes: tools send ping/stats/configs, events always travel in `events`
    // batches, and sessions here are the hello user's.
    private static readonly Dictionary<string, string> NotBuilt = new Dictionary<string, string>
    {
        { "ping", "a tool's request" },
        { "stats", "a tool's request" },
        { "configs", "a tool's request (configs come on the configs socket)" },
        { "session_start for another user (dedicated server)", "sessions are the hello user's" },
        { "session_end for another user (dedicated server)", "sessions are the hello user's" },
    };

    private static BridgeClient client;
    private static EventQueue queue;

    private static int Main(string[] args)
    {
        var vectors = (Dictionary<string, object>)Json.Parse(File.ReadAllText(args[0]));
        // A client whose daemon never answers: what it builds stays in its queue for the checks to read.
        client = BridgeClient.Connect(new GameInfo { GameBuild = "1.4.2", DeviceId = "d-42" }, new BridgeSettings
        {
            IngressEndpoint = "tcp://127.0.0.1:" + FreePort(),
            ConfigsEndpoint = "tcp://127.0.0.1:" + FreePort(),
            Log = (level, message) => { },
        });
        // The queue is private to the client; reading it back is the only way to see the bytes its builders made.
        queue = (EventQueue)typeof(BridgeClient).GetField("queue", BindingFlags.NonPublic | BindingFlags.Instance).GetValue(client);
        var limits = (Dictionary<string, object>)vectors["limits"];
        Run("msgpack: writer and reader", () => Codec(vectors["msgpack"]));
        Run("requests: writer and reader", () => Codec(vectors["requests"]));
        Run("requests: this binding's builders", () => Builders(vectors["requests"]));
        Run("replies: reader and parsers", () => Replies(vectors["replies"]));
        Run("publications: reader and parsers", () => Publications(vectors["publications"]));
        Run("limits: defaults", () => LimitDefaults((Dictionary<string, object>)limits["values"]));
        Run("limits: writer and reader", () => Codec(limits["cases"]));
        Run("limits: the call-site checks refuse what the daemon refuses", () => CallSiteChecks(limits["cases"]));
        Run("limits: frames no reply can be", () => Frames(limits["frames"]));
        client.Dispose();
        return Summary();
    }

    // ----- the checks ---------------------------------------------------------------------------------------

    /// <summary>Encoding each value tree gives its hex; decoding the hex gives the tree, kinds included.</summary>
    private static void Codec(object section)
    {
        foreach (Dictionary<string, object> vector in (List<object>)section)
        {
            object tree = Tree(vector["value"]);
            var writer = new MsgPackWriter(16);
            writer.WriteValue(tree);
            string written = Hex(writer.Buffer, writer.Length);
            byte[] frame = Bytes((string)vector["hex"]);
            string difference;
            try
            {
                difference = Difference(tree, MsgPackReader.Decode(frame, 0, frame.Length), true);
            }
            catch (FormatException e)
            {
                difference = "unreadable: " + e.Message;
            }
            Expect(vector["name"] + ": written and read", written == (string)vector["hex"] && difference == null,
                   written != (string)vector["hex"] ? "wrote " + written : difference);
        }
    }

    private static void Builders(object section)
    {
        foreach (Dictionary<string, object> vector in (List<object>)section)
        {
            string name = (string)vector["name"];
            var request = (Dictionary<string, object>)Tree(vector["value"]);
            uint rid = (uint)(long)request["rid"];
            string reason;
            if (NotBuilt.TryGetValue(name, out reason))
            {
                Console.WriteLine("-     " + name + ": not built by this binding (" + reason + ")");
                continue;
            }
            switch ((string)request["type"])
            {
                case "hello": Hello(name, request, rid); break;
                case "event": TypedHelper(name, (Dictionary<string, object>)request["event"]); break;
                case "events": Batch(name, request, rid); break;
                case "session_start": Control(name, request, rid, () => client.StartSession(), true); break;
                case "session_end": Control(name, request, rid, () => client.EndSession(), true); break;
                case "flush": Control(name, request, rid, () => client.Flush(), false); break;
                case "purchase": Control(name, request, rid, () => client.VerifyPurchase(PurchaseOf(request), r => { }), false); break;
                case "consent":
                    Control(name, request, rid, () => client.SetConsent(ConsentOf(request, "analytics"), ConsentOf(request, "ip_ads"),
                                                                        Text(request, "user_id")), false);
                    break;
                case "forget": Control(name, request, rid, () => client.Forget(Text(request, "user_id")), false); break;
                default: Expect(name + ": a builder for it", false, "unknown request type"); break;
            }
        }
    }

    /// <summary>The hello of a game described as the vector's; the binding names itself, not the vector's binding.</summary>
    private static void Hello(string name, Dictionary<string, object> request, uint rid)
    {
        int pairCount;
        byte[] pairs = GameOf(request).EncodeHello(out pairCount, null);
        var writer = new MsgPackWriter(256);
        Wire.WriteRequest(writer, Wire.HelloType, rid, pairs, pairCount);
        request["binding"] = BridgeClient.BindingName;
        request["binding_version"] = BridgeClient.BindingVersion;
        Expect(name + ": GameInfo builds it", Difference(request, Read(writer), false) == null, Difference(request, Read(writer), false));
    }

    /// <summary>
    /// An event of the vector's category through its typed helper, given the vector's fields: the same map but for
    /// the id and time the helper makes itself; an event with its own id, user and time through Track and EventOptions.
    /// </summary>
    private static void TypedHelper(string name, Dictionary<string, object> expected)
    {
        var fields = (Dictionary<string, object>)expected["fields"];
        string id = Text(fields, "event_id");
        string[] parts = id != null ? id.Split(':') : new string[0];
        if (expected.ContainsKey("user_id"))
        {
            Expect(name + ": Track with EventOptions builds it", Difference(expected, TrackAsGiven(expected), false) == null,
                   Difference(expected, TrackAsGiven(expected), false));
            return;
        }
        long before = Wire.NowMs();
        switch ((string)expected["category"])
        {
            case "design": client.TrackDesign(id, Number(fields, "value")); break;
            case "business": client.TrackBusiness(Text(fields, "currency"), (long)fields["amount"], parts[0], parts[1], Text(fields, "cart_type")); break;
            case "progression":
                client.TrackProgression((ProgressionStatus)Array.IndexOf(Wire.ProgressionStatusNames, parts[0]), parts[1],
                                        parts.Length > 2 ? parts[2] : null, parts.Length > 3 ? parts[3] : null,
                                        (long?)Integer(fields, "score"), (long?)Integer(fields, "attempt_num"));
                break;
            case "resource":
                client.TrackResource((ResourceFlow)Array.IndexOf(Wire.ResourceFlowNames, parts[0]), parts[1], Number(fields, "amount").Value, parts[2], parts[3]);
                break;
            case "error": client.TrackError((ErrorSeverity)Enum.Parse(typeof(ErrorSeverity), Text(fields, "severity"), true), Text(fields, "message")); break;
            case "ads":
                client.TrackAd((AdAction)Enum.Parse(typeof(AdAction), Pascal(Text(fields, "ad_action"))),
                               (AdType)Enum.Parse(typeof(AdType), Pascal(Text(fields, "ad_type"))), Text(fields, "ad_sdk_name"),
                               Text(fields, "ad_placement"), Integer(fields, "ad_duration"),
                               Text(fields, "ad_fail_show_reason") == null ? (AdFailShowReason?)null
                               : (AdFailShowReason)Enum.Parse(typeof(AdFailShowReason), Pascal(Text(fields, "ad_fail_show_reason"))));
                break;
            case "impression":
                client.TrackImpression(Text(fields, "ad_network_name"), Text(fields, "ad_network_version"),
                                       fields["impression_data"] as Dictionary<string, object>);
                break;
            case "custom":
                var own = new Dictionary<string, object>(fields);
                own.Remove("name");
                client.TrackCustom(Text(fields, "name"), own);
                break;
        }
        var built = Queued()[0] as Dictionary<string, object>;
        long ts = built != null && built["ts"] is long ? (long)built["ts"] : 0;
        bool fresh = built != null && built["id"] is string && ((string)built["id"]).Length == 36 && ts >= before && ts <= Wire.NowMs();
        if (built != null)
        {
            built["id"] = expected["id"];
            built["ts"] = expected["ts"];
        }
        string difference = Difference(expected, built, false);
        Expect(name + ": the typed helper builds it, with a fresh UUID and the current time", fresh && difference == null,
               difference ?? "id/ts " + (built != null ? built["id"] + " " + ts : "none"));
    }

    private static void Batch(string name, Dictionary<string, object> request, uint rid)
    {
        foreach (Dictionary<string, object> e in (object[])request["events"]) Track(e);
        long first;
        int count = queue.ReserveBatch(long.MaxValue, 1000, 1 << 20, out first);
        var writer = new MsgPackWriter(256);
        Wire.WriteEventsRequest(writer, rid, queue, first, count);
        queue.Release(first + count);
        string difference = Difference(request, Read(writer), false);
        Expect(name + ": Track with EventOptions builds it", difference == null, difference);
    }

    /// <summary>A request queued behind the events; a session request also carries the client's clock as <c>ts</c>.</summary>
    private static void Control(string name, Dictionary<string, object> request, uint rid, Action call, bool stampsTime)
    {
        long before = Wire.NowMs();
        call();
        var control = queue.PeekControl();
        queue.RemoveControl(control);
        var writer = new MsgPackWriter(256);
        Wire.WriteRequest(writer, control.Type, rid, control.Pairs, control.PairCount);
        var built = Read(writer);
        bool stamped = !stampsTime || (built.ContainsKey("ts") && built["ts"] is long && (long)built["ts"] >= before);
        if (stampsTime) built.Remove("ts");
        string difference = Difference(request, built, false);
        Expect(name + ": its call builds it" + (stampsTime ? ", with the time" : ""), stamped && difference == null, difference);
    }

    private static void Replies(object section)
    {
        Codec(section);
        foreach (Dictionary<string, object> vector in (List<object>)section)
        {
            string name = (string)vector["name"];
            var reply = new WireReply((Dictionary<string, object>)Tree(vector["value"]));
            if (name.StartsWith("error ", StringComparison.Ordinal))
            {
                Expect(name + ": read as that error", reply.IsError && reply.ErrorCode == name.Substring(6) && reply.ErrorMessage.Length > 0
                       && (reply.Rid >= 0) == (reply.Map["rid"] != null), reply.ErrorCode + " rid " + reply.Rid);
                continue;
            }
            switch (reply.Type)
            {
                case "welcome":
                    // A daemon with other limits first, so that taking this welcome's shows.
                    var limits = new Limits();
                    var other = new Dictionary<string, object>();
                    foreach (var key in reply.GetMap("limits").Keys) other[key] = 4096L;
                    limits.Apply(new WireReply(other));
                    limits.Apply(new WireReply(reply.GetMap("limits")));
                    string difference = Difference(reply.GetMap("limits"), LimitsOf(limits), false);
                    var open = reply.GetMap("session");
                    var session = open != null ? new SessionInfo(open) : null;
                    Expect(name + ": its limits replace the defaults, its session is read", difference == null
                           && (open == null || (session.Id == (string)open["session_id"] && session.IsOpen && session.Number == (long)open["session_num"])),
                           difference);
                    break;
                case "ack":
                    var refusals = new List<ProviderRefusal>();
                    var log = new List<string>();
                    var callbacks = new CallbackQueue();
                    var parser = new ProviderRefusals(callbacks, new ConsoleLog((level, message) => log.Add(message), callbacks), 0);
                    parser.AddHandler(refusals.Add);
                    parser.AddFrom(reply);
                    callbacks.Pump();
                    var invalid = reply.GetArray("invalid");
                    bool same = refusals.Count == invalid.Length && parser.Count == invalid.Length && log.Count == invalid.Length;
                    for (int i = 0; same && i < invalid.Length; i++)
                    {
                        var entry = new WireReply((Dictionary<string, object>)invalid[i]);
                        same = refusals[i].EventId == entry.GetString("id") && refusals[i].Provider == entry.GetString("provider")
                               && refusals[i].Rule == entry.GetString("message") && log[i].Contains(refusals[i].Rule);
                    }
                    Expect(name + ": each invalid entry is a provider refusal, with its warning", same, refusals.Count + " refusals");
                    break;
                case "session":
                    var info = new SessionInfo(reply.Map);
                    Expect(name + ": read as the session", info.Id == reply.GetString("session_id") && info.StartedAtMs == reply.GetLong("started_at", -1)
                           && info.IsOpen == (reply.Map["ended_at"] == null) && info.LengthSeconds == (reply.Map["length"] as long?), info.Id);
                    break;
                case "purchase":
                    PurchaseResult result = null;
                    var pumped = new CallbackQueue();
                    var verdicts = new PurchaseVerdicts("d-42", pumped);
                    verdicts.Expect(reply.GetString("id"), PurchaseStore.Apple, r => result = r).OnReply(reply);
                    pumped.Pump();
                    bool verified = reply.GetString("state") == "verified";
                    Expect(name + (verified ? ": the verdict reaches the callback" : ": no verdict yet, the callback waits"),
                           verified ? result != null && result.Ok && result.IsValid == reply.GetBool("is_valid") && result.Reason == reply.GetString("reason")
                                    : result == null, result == null ? "no callback" : result.ToString());
                    break;
            }
        }
    }

    private static void Publications(object section)
    {
        Codec(section);
        foreach (Dictionary<string, object> vector in (List<object>)section)
        {
            string topic = (string)vector["topic"];
            var publication = new WireReply((Dictionary<string, object>)Tree(vector["value"]));
            var callbacks = new CallbackQueue();
            if (topic.StartsWith("purchase/", StringComparison.Ordinal))
            {
                var told = new List<PurchaseResult>();
                var verdicts = new PurchaseVerdicts("d-42", callbacks);
                verdicts.AddHandler(told.Add);
                verdicts.Apply(publication);
                callbacks.Pump();
                var values = publication.GetMap("values");
                Expect(vector["name"] + ": every verdict reaches PurchaseVerified", told.Count == values.Count
                       && told.TrueForAll(r => values.ContainsKey(r.Id) && r.VerifiedAtMs.HasValue), told.Count + " verdicts");
                continue;
            }
            var configs = new ConfigStore("d-42", callbacks);
            configs.Apply(topic, publication);
            var snapshot = configs.Current;
            bool all = snapshot.TopicVersion(topic) == publication.GetLong("version", -1);
            foreach (var entry in publication.GetMap("values"))
            {
                object value;
                all &= snapshot.TryGetValue(entry.Key, out value) && Difference(entry.Value, value, true) == null;
            }
            Expect(vector["name"] + ": its values and version reach the snapshot", all, "");
        }
    }

    private static void LimitDefaults(Dictionary<string, object> values)
    {
        string difference = Difference(values, LimitsOf(new Limits()), false);
        Expect("the defaults before any welcome are protocol.md's", difference == null, difference);
    }

    /// <summary>
    /// Each limit case through the call that would send it: the call throws exactly when the daemon would refuse
    /// (an event the ack would reject, a purchase or hello it would answer with an error), and what it queues is the
    /// vector's map. A case whose refusal no call of this binding can provoke is listed with "-".
    /// </summary>
    private static void CallSiteChecks(object section)
    {
        foreach (Dictionary<string, object> vector in (List<object>)section)
        {
            string name = (string)vector["name"];
            var request = (Dictionary<string, object>)Tree(vector["value"]);
            var verdict = (Dictionary<string, object>)vector["verdict"];   // plain JSON, not a value tree
            string type = (string)request["type"];
            string skip = SkipReason(type, request, verdict);
            if (skip != null)
            {
                Console.WriteLine("-     " + name + ": " + skip);
                continue;
            }
            if (type == "event" || type == "events")
            {
                var events = type == "event" ? new object[] { request["event"] } : (object[])request["events"];
                var rejected = new HashSet<long>();
                foreach (Dictionary<string, object> r in (List<object>)verdict["rejected"]) rejected.Add((long)r["index"]);
                for (int i = 0; i < events.Length; i++)
                {
                    var expected = (Dictionary<string, object>)events[i];
                    string error = Refusal(() => Track(expected));
                    string difference = error == null ? Difference(expected, Queued()[0], false) : null;
                    Expect(name + (events.Length > 1 ? " [" + i + "]" : "") + (rejected.Contains(i) ? ": refused at the call" : ": accepted and queued as given"),
                           (error != null) == rejected.Contains(i) && difference == null, error ?? difference);
                }
                continue;
            }
            bool refuses = (string)verdict["type"] == "error";
            string refusal = type == "purchase"
                ? Refusal(() => { client.VerifyPurchase(PurchaseOf(request), r => { }); queue.RemoveControl(queue.PeekControl()); })
                : Refusal(() => GameOf(request).Validate());
            Expect(name + (refuses ? ": refused at the call" : ": accepted"), (refusal != null) == refuses, refusal);
        }
    }

    /// <summary>Why a limit case cannot be made through this binding's calls, or null.</summary>
    private static string SkipReason(string type, Dictionary<string, object> request, Dictionary<string, object> verdict)
    {
        if (type == "hello") return verdict.ContainsKey("field") && (string)verdict["field"] == "protocol" ? "the binding sets the protocol itself" : null;
        if (type == "purchase") return null;
        if (type != "event" && type != "events") return "no call of this binding sends " + type + " with these fields";
        if ((string)verdict["type"] == "error") return "the binding forms its batches itself, within the limits";
        var events = type == "event" ? new object[] { request["event"] } : (object[])request["events"];
        foreach (Dictionary<string, object> e in events)
        {
            if (Array.IndexOf(Wire.CategoryNames, e["category"]) < 0) return "EventCategory has no " + e["category"];
            if (!(e["ts"] is long)) return "EventOptions.TimestampMs is a long: it cannot hold " + e["ts"];
        }
        return null;
    }

    private static void Frames(object section)
    {
        foreach (Dictionary<string, object> vector in (List<object>)section)
        {
            byte[] frame = Bytes((string)vector["hex"]);
            string refused = Refusal(() => MsgPackReader.DecodeMap(frame, 0, frame.Length));
            Expect(vector["name"] + ": the reader refuses it", refused != null, "read it");
        }
    }

    // ----- building through the client ------------------------------------------------------------------------

    /// <summary>Tracks an event with its own id, user and time: the generic call with EventOptions.</summary>
    private static void Track(Dictionary<string, object> e)
    {
        var options = new EventOptions { Id = (string)e["id"], TimestampMs = (long)e["ts"], UserId = e.ContainsKey("user_id") ? (string)e["user_id"] : null };
        var category = (EventCategory)Array.IndexOf(Wire.CategoryNames, e["category"]);
        client.Track(category, (Dictionary<string, object>)e["fields"], options);
    }

    private static Dictionary<string, object> TrackAsGiven(Dictionary<string, object> e)
    {
        Track(e);
        return Queued()[0] as Dictionary<string, object>;
    }

    /// <summary>The events queued since the last call, as the daemon would read them; the queue forgets them.</summary>
    private static object[] Queued()
    {
        long first;
        int count = queue.ReserveBatch(long.MaxValue, 1000, 1 << 20, out first);
        var writer = new MsgPackWriter(256);
        Wire.WriteEventsRequest(writer, 0, queue, first, count);
        queue.Release(first + count);
        return count == 0 ? new object[] { null } : (object[])Read(writer)["events"];
    }

    private static GameInfo GameOf(Dictionary<string, object> hello)
    {
        return new GameInfo
        {
            Engine = Text(hello, "engine"), GameBuild = Text(hello, "game_build"), DeviceId = Text(hello, "device_id"),
            UserId = Text(hello, "user_id"), EngineVersion = Text(hello, "engine_version"), Platform = Text(hello, "platform"),
            OsVersion = Text(hello, "os_version"), Device = Text(hello, "device"), Manufacturer = Text(hello, "manufacturer"),
        };
    }

    private static Purchase PurchaseOf(Dictionary<string, object> request)
    {
        string status = Text(request, "status");
        return new Purchase
        {
            Id = Text(request, "id"),
            Store = (PurchaseStore)Array.IndexOf(Wire.PurchaseStoreNames, request["store"]),
            Receipt = Text(request, "receipt"),
            Signature = Text(request, "signature"),
            PriceUsd = Number(request, "price_usd"),
            Status = status == null ? (PurchaseStatus?)null : (PurchaseStatus)Array.IndexOf(Wire.PurchaseStatusNames, status),
            Comment = Text(request, "comment"),
            Metadata = request.ContainsKey("metadata") ? (Dictionary<string, object>)request["metadata"] : null,
        };
    }

    private static Dictionary<string, object> LimitsOf(Limits limits)
    {
        return new Dictionary<string, object>
        {
            { "max_message_bytes", (long)limits.MaxMessageBytes }, { "max_batch_events", (long)limits.MaxBatchEvents },
            { "max_event_id_chars", (long)limits.MaxEventIdChars }, { "max_fields", (long)limits.MaxFields },
            { "max_string_chars", (long)limits.MaxStringChars }, { "max_depth", (long)limits.MaxDepth },
        };
    }

    // ----- value trees --------------------------------------------------------------------------------------

    /// <summary>The tagged JSON form of the README ("Value trees") as the values the binding writes and reads.</summary>
    private static object Tree(object json)
    {
        var list = json as List<object>;
        if (list != null) return list.ConvertAll(Tree).ToArray();
        var tagged = json as Dictionary<string, object>;
        if (tagged == null) return json;
        foreach (var tag in tagged)
        {
            switch (tag.Key)
            {
                case "$map":
                    var map = new Dictionary<string, object>();
                    foreach (List<object> pair in (List<object>)tag.Value) map.Add((string)pair[0], Tree(pair[1]));
                    return map;
                case "$bin": return Convert.FromBase64String((string)tag.Value);
                case "$int":
                    long small;
                    if (long.TryParse((string)tag.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out small)) return small;
                    return ulong.Parse((string)tag.Value, CultureInfo.InvariantCulture);
                case "$float64": return Json.Double(tag.Value);
                case "$float32": return (float)Json.Double(tag.Value);
            }
        }
        throw new FormatException("not a value tree: " + string.Join(",", tagged.Keys));
    }

    /// <summary>
    /// Null when the two trees are the same, else where they differ. Strict: the same kinds, as the reader must give
    /// them (a float 32 reads as a double of the same value). Loose, for what builders make: numbers by value (a
    /// resource amount is a double whatever the game passed), maps whatever their order.
    /// </summary>
    private static string Difference(object expected, object actual, bool strict, string path = "")
    {
        if (expected == null || actual == null) return expected == actual ? null : path + ": " + Show(expected) + " vs " + Show(actual);
        if (IsNumber(expected) && IsNumber(actual))
        {
            bool expectedFloat = expected is double || expected is float, actualFloat = actual is double || actual is float;
            if (strict && expectedFloat != actualFloat) return path + ": " + Show(expected) + " vs " + Show(actual) + " (kind)";
            if (expectedFloat || actualFloat)
            {
                double a = Convert.ToDouble(expected, CultureInfo.InvariantCulture), b = Convert.ToDouble(actual, CultureInfo.InvariantCulture);
                return BitConverter.DoubleToInt64Bits(a) == BitConverter.DoubleToInt64Bits(b) || (double.IsNaN(a) && double.IsNaN(b))
                    ? null : path + ": " + a.ToString("R", CultureInfo.InvariantCulture) + " vs " + b.ToString("R", CultureInfo.InvariantCulture);
            }
            return Convert.ToDecimal(expected, CultureInfo.InvariantCulture) == Convert.ToDecimal(actual, CultureInfo.InvariantCulture)
                ? null : path + ": " + expected + " vs " + actual;
        }
        var expectedMap = expected as Dictionary<string, object>;
        if (expectedMap != null)
        {
            var actualMap = actual as Dictionary<string, object>;
            if (actualMap == null) return path + ": a map vs " + Show(actual);
            foreach (var entry in expectedMap)
            {
                if (!actualMap.ContainsKey(entry.Key)) return path + "." + entry.Key + ": missing";
                string inner = Difference(entry.Value, actualMap[entry.Key], strict, path + "." + entry.Key);
                if (inner != null) return inner;
            }
            foreach (var key in actualMap.Keys)
            {
                if (!expectedMap.ContainsKey(key)) return path + "." + key + ": not expected";
            }
            return null;
        }
        var expectedBytes = expected as byte[];
        if (expectedBytes != null)
        {
            var actualBytes = actual as byte[];
            return actualBytes != null && Hex(expectedBytes, expectedBytes.Length) == Hex(actualBytes, actualBytes.Length) ? null : path + ": bytes differ";
        }
        var expectedArray = expected as object[];
        if (expectedArray != null)
        {
            var actualArray = actual as object[];
            if (actualArray == null || actualArray.Length != expectedArray.Length) return path + ": an array of " + expectedArray.Length + " vs " + Show(actual);
            for (int i = 0; i < expectedArray.Length; i++)
            {
                string inner = Difference(expectedArray[i], actualArray[i], strict, path + "[" + i + "]");
                if (inner != null) return inner;
            }
            return null;
        }
        return expected.Equals(actual) ? null : path + ": " + Show(expected) + " vs " + Show(actual);
    }

    private static bool IsNumber(object value)
    {
        return value is long || value is ulong || value is double || value is float;
    }

    private static string Show(object value)
    {
        if (value == null) return "nil";
        string text = value as string;
        if (text != null) return "\"" + (text.Length > 40 ? text.Substring(0, 40) + "..." : text) + "\"";
        return value.GetType().Name + " " + value;
    }

    // ----- small helpers ------------------------------------------------------------------------------------

    private static Dictionary<string, object> Read(MsgPackWriter writer)
    {
        return MsgPackReader.DecodeMap(writer.Buffer, 0, writer.Length);
    }

    /// <summary>The message of the ArgumentException (or FormatException) the call throws, or null.</summary>
    private static string Refusal(Action call)
    {
        try
        {
            call();
            return null;
        }
        catch (ArgumentException e)
        {
            return e.Message;
        }
        catch (FormatException e)
        {
            return e.Message;
        }
    }

    private static ConsentState ConsentOf(Dictionary<string, object> request, string purpose)
    {
        string state = Text(request, purpose);
        return state == null ? ConsentState.Unchanged : state == "granted" ? ConsentState.Granted : ConsentState.Denied;
    }

    private static string Text(Dictionary<string, object> map, string key)
    {
        object value;
        return map.TryGetValue(key, out value) ? value as string : null;
    }

    private static double? Number(Dictionary<string, object> map, string key)
    {
        object value;
        if (!map.TryGetValue(key, out value)) return null;
        return Convert.ToDouble(value, CultureInfo.InvariantCulture);
    }

    private static long? Integer(Dictionary<string, object> map, string key)
    {
        object value;
        return map.TryGetValue(key, out value) ? (long?)(long)value : null;
    }

    /// <summary>snake_case → PascalCase, the enum names of the wire values (<c>rewarded_video</c> → RewardedVideo).</summary>
    private static string Pascal(string snake)
    {
        var text = new StringBuilder();
        foreach (string part in snake.Split('_')) text.Append(char.ToUpperInvariant(part[0])).Append(part.Substring(1));
        return text.ToString();
    }

    private static string Hex(byte[] bytes, int count)
    {
        var text = new StringBuilder(count * 2);
        for (int i = 0; i < count; i++) text.Append(bytes[i].ToString("x2"));
        return text.ToString();
    }

    private static byte[] Bytes(string hex)
    {
        var bytes = new byte[hex.Length / 2];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = byte.Parse(hex.Substring(i * 2, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        return bytes;
    }

    /// <summary>
    /// Just enough JSON for the vectors file: objects (in file order), arrays, strings, true/false/null, and numbers,
    /// integers as long (the file writes only integers untagged) and the rest as double.
    /// </summary>
    private static class Json
    {
        public static object Parse(string text)
        {
            int at = 0;
            object value = Value(text, ref at);
            Space(text, ref at);
            if (at != text.Length) throw new FormatException("trailing text at " + at);
            return value;
        }

        /// <summary>A tagged float: a number, or "nan", "inf", "-inf".</summary>
        public static double Double(object value)
        {
            var text = value as string;
            if (text == null) return Convert.ToDouble(value, CultureInfo.InvariantCulture);
            switch (text)
            {
                case "nan": return BitConverter.Int64BitsToDouble(0x7ff8000000000000);   // the quiet NaN Python writes; double.NaN has the sign bit set
                case "inf": return double.PositiveInfinity;
                case "-inf": return double.NegativeInfinity;
            }
            throw new FormatException("not a float: " + text);
        }

        private static object Value(string text, ref int at)
        {
            Space(text, ref at);
            char c = text[at];
            if (c == '{')
            {
                var map = new Dictionary<string, object>();
                at++;
                Space(text, ref at);
                if (text[at] == '}') { at++; return map; }
                while (true)
                {
                    Space(text, ref at);
                    string key = String(text, ref at);
                    Space(text, ref at);
                    Take(text, ref at, ':');
                    map.Add(key, Value(text, ref at));
                    Space(text, ref at);
                    if (text[at++] == '}') return map;
                }
            }
            if (c == '[')
            {
                var list = new List<object>();
                at++;
                Space(text, ref at);
                if (text[at] == ']') { at++; return list; }
                while (true)
                {
                    list.Add(Value(text, ref at));
                    Space(text, ref at);
                    if (text[at++] == ']') return list;
                }
            }
            if (c == '"') return String(text, ref at);
            if (string.CompareOrdinal(text, at, "true", 0, 4) == 0) { at += 4; return true; }
            if (string.CompareOrdinal(text, at, "false", 0, 5) == 0) { at += 5; return false; }
            if (string.CompareOrdinal(text, at, "null", 0, 4) == 0) { at += 4; return null; }
            int start = at;
            while (at < text.Length && "+-0123456789.eE".IndexOf(text[at]) >= 0) at++;
            string number = text.Substring(start, at - start);
            if (number.IndexOfAny(new[] { '.', 'e', 'E' }) < 0) return long.Parse(number, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            double parsed = double.Parse(number, NumberStyles.Float, CultureInfo.InvariantCulture);
            // Some runtimes read "-0.0" as +0.
            return parsed == 0 && number[0] == '-' ? -0.0 : parsed;
        }

        private static string String(string text, ref int at)
        {
            Take(text, ref at, '"');
            var value = new StringBuilder();
            while (text[at] != '"')
            {
                char c = text[at++];
                if (c != '\\')
                {
                    value.Append(c);
                    continue;
                }
                char escaped = text[at++];
                switch (escaped)
                {
                    case 'n': value.Append('\n'); break;
                    case 't': value.Append('\t'); break;
                    case 'r': value.Append('\r'); break;
                    case 'b': value.Append('\b'); break;
                    case 'f': value.Append('\f'); break;
                    case 'u': value.Append((char)int.Parse(text.Substring(at, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture)); at += 4; break;
                    default: value.Append(escaped); break;
                }
            }
            at++;
            return value.ToString();
        }

        private static void Take(string text, ref int at, char c)
        {
            if (text[at] != c) throw new FormatException("expected '" + c + "' at " + at);
            at++;
        }

        private static void Space(string text, ref int at)
        {
            while (at < text.Length && char.IsWhiteSpace(text[at])) at++;
        }
    }
}
