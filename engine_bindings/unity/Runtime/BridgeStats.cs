namespace EngineBridge
{
    /// <summary>A snapshot of a client's counters, from <see cref="BridgeClient.GetStats"/>.</summary>
    public struct BridgeStats
    {
        /// <summary>Events accepted by Track calls since the client started.</summary>
        public long Tracked;

        /// <summary>Events held in memory: not yet sent, or sent and not yet acknowledged.</summary>
        public long Queued;

        /// <summary>Of the queued events, those sent on the current connection and awaiting their ack.</summary>
        public long InFlight;

        /// <summary>
        /// Events that never left this side: pushed out of a full queue before they were sent, and any tracked
        /// after shutdown. An event pushed out after it was sent is counted by its ack instead; one whose ack was lost
        /// with the connection is in neither count, since the daemon may or may not have it.
        /// </summary>
        public long Dropped;

        /// <summary>Events an <c>ack</c> covered: stored, duplicates and rejected together.</summary>
        public long Acknowledged;

        /// <summary>Events the daemon stored.</summary>
        public long Stored;

        /// <summary>Events the daemon already had (a resend whose first copy had arrived).</summary>
        public long Duplicates;

        /// <summary>Events the daemon refused; see <see cref="BridgeClient.LastError"/> for the latest reason.</summary>
        public long Rejected;

        /// <summary>
        /// Provider refusals (<see cref="BridgeClient.ProviderRefused"/>): events stored, but that a provider's rules
        /// refuse; an event two providers refuse counts twice.
        /// </summary>
        public long ProviderRefusals;

        /// <summary>Events sent again because their ack had not come when the connection dropped or failed.</summary>
        public long Resent;

        /// <summary>Connections made after the first one.</summary>
        public long Reconnects;

        /// <summary>True while the daemon has welcomed this client on the current connection.</summary>
        public bool Connected;

        /// <summary>The daemon this client launched (<see cref="BridgeSettings.Daemon"/>), 0 if none.</summary>
        public long DaemonPid;

        /// <summary>Why the daemon last refused an event (or a daemon launch failed); null if never.</summary>
        public string LastRejection;
    }
}
