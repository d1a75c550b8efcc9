using System;
using System.Text;

namespace EngineBridge.Internal
{
    /// <summary>
    /// The SUB side of the configs socket (protocol.md section 7): subscribes on every connection to the prefixes
    /// the <c>welcome</c> lists, <c>config/</c> and <c>purchase/&lt;device_id&gt;</c> (the daemon then publishes the
    /// current value of each topic, so a reconnect also catches up), and hands each two-frame publication to the
    /// <see cref="ConfigStore"/> or, for the device's verdicts topic, to <see cref="PurchaseVerdicts"/>.
    /// </summary>
    internal sealed class ConfigLink : Link
    {
        private const int WaitMs = 50;

        private readonly ConfigStore configs;
        private readonly PurchaseVerdicts purchases;
        private readonly byte[][] subscriptions;
        private string topic;
        private bool skipping;

        private static readonly string[] PeerTypes = { "XPUB", "PUB" };

        public ConfigLink(ZmtpEndpoint endpoint, ConfigStore configs, PurchaseVerdicts purchases,
                          Action<ConnectionState, string> stateChanged)
            : base(endpoint, "SUB", PeerTypes, "engine-bridge configs", stateChanged)
        {
            this.configs = configs;
            this.purchases = purchases;
            subscriptions = new[] { BuildSubscription(ConfigStore.Prefix), BuildSubscription(purchases.Topic) };
        }

        protected override void OnConnected()
        {
            // A subscription is a message whose one frame is 0x01 then the topic prefix (ZMTP 3.0 style).
            foreach (var subscription in subscriptions)
            {
                if (!Connection.Send(subscription, 0, subscription.Length, false)) return;
            }
            OnAccepted("subscribed to the daemon's configs at " + Endpoint);
        }

        protected override void OnDisconnected()
        {
            topic = null;
            skipping = false;
        }

        protected override int Work()
        {
            return WaitMs;
        }

        protected override void OnFrame(ZmtpFrame frame)
        {
            if (skipping)
            {
                skipping = frame.More;
                return;
            }
            if (topic == null)
            {
                if (frame.More) topic = Encoding.UTF8.GetString(frame.Buffer, frame.Offset, frame.Count);
                return;
            }
            string current = topic;
            topic = null;
            if (frame.More)
            {
                skipping = true;   // not a two-frame publication: skip to its last frame
                return;
            }
            try
            {
                var publication = new WireReply(MsgPackReader.DecodeMap(frame.Buffer, frame.Offset, frame.Count));
                if (current == purchases.Topic) purchases.Apply(publication);
                else configs.Apply(current, publication);
            }
            catch (FormatException e)
            {
                LastError = "unreadable publication on " + current + ": " + e.Message;
            }
        }

        private static byte[] BuildSubscription(string prefix)
        {
            byte[] topicBytes = Encoding.UTF8.GetBytes(prefix);
            var message = new byte[topicBytes.Length + 1];
            message[0] = 1;
            topicBytes.CopyTo(message, 1);
            return message;
        }
    }
}
