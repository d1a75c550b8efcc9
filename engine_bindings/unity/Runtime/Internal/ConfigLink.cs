using System.Text;

namespace EngineBridge.Internal
{
    /// <summary>
    /// The SUB side of the configs socket (protocol.md section 7): subscribes to <c>config/</c> on every
    /// connection (the daemon then publishes the current value of each topic, so a reconnect also catches up)
    /// and hands each two-frame publication to the <see cref="ConfigStore"/>.
    /// </summary>
    internal sealed class ConfigLink : Link
    {
        private const int WaitMs = 50;

        private static readonly byte[] Subscription = BuildSubscription(ConfigStore.Prefix);

        private readonly ConfigStore store;
        private string topic;
        private bool skipping;

        public ConfigLink(ZmtpEndpoint endpoint, ConfigStore store)
            : base(endpoint, "SUB", "engine-bridge configs")
        {
            this.store = store;
        }

        protected override void OnConnected()
        {
            // A subscription is a message whose one frame is 0x01 then the topic prefix (ZMTP 3.0 style).
            if (Connection.Send(Subscription, 0, Subscription.Length, false)) ResetBackoff();
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
                store.Apply(current, new WireReply(MsgPackReader.DecodeMap(frame.Buffer, frame.Offset, frame.Count)));
            }
            catch (System.FormatException e)
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
