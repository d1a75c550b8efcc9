namespace EngineBridge
{
    /// <summary>
    /// An event the daemon stored but that a provider's own rules refuse (an entry of the <c>ack</c>'s
    /// <c>invalid</c>, protocol.md 4.3), e.g. a GameAnalytics event id with a character it does not allow. The
    /// daemon keeps the event as a dead letter for that provider (<c>engine-bridge dead-letters</c> shows it and
    /// can re-queue it after a fix); other providers still get it. Fix the call that made it.
    /// </summary>
    public sealed class ProviderRefusal
    {
        internal ProviderRefusal(string eventId, string provider, string rule)
        {
            EventId = eventId;
            Provider = provider;
            Rule = rule;
        }

        /// <summary>The event's <c>id</c> (the binding's UUID, or <see cref="EventOptions.Id"/>).</summary>
        public string EventId { get; private set; }

        /// <summary>The provider's name in the daemon's configuration, e.g. <c>gameanalytics</c>.</summary>
        public string Provider { get; private set; }

        /// <summary>The rule the event breaks, as the provider words it.</summary>
        public string Rule { get; private set; }

        public override string ToString()
        {
            return Provider + " refuses event " + EventId + ": " + Rule;
        }
    }
}
