namespace EngineBridge
{
    /// <summary>The event categories of protocol v1; the generic <see cref="BridgeClient.Track"/> takes one.</summary>
    public enum EventCategory
    {
        Design,
        Business,
        Progression,
        Resource,
        Error,
        Ads,
        Custom,
        /// <summary>Ad revenue: an ad network's impression record; after <c>Custom</c>, so that the others keep their values.</summary>
        Impression,
    }

    /// <summary>The first part of a progression event id.</summary>
    public enum ProgressionStatus
    {
        Start,
        Fail,
        Complete,
    }

    /// <summary>Whether a resource event gains (Source) or spends (Sink) a virtual currency.</summary>
    public enum ResourceFlow
    {
        Source,
        Sink,
    }

    /// <summary>Severity of an error event; sent as the lower-case name.</summary>
    public enum ErrorSeverity
    {
        Debug,
        Info,
        Warning,
        Error,
        Critical,
    }

    /// <summary>What happened to an ad; sent as snake_case (<c>failed_show</c>, <c>reward_received</c>, ...).</summary>
    public enum AdAction
    {
        Clicked,
        Show,
        FailedShow,
        RewardReceived,
        Request,
        Loaded,
    }

    /// <summary>The kind of ad; sent as snake_case (<c>rewarded_video</c>, <c>offer_wall</c>, ...).</summary>
    public enum AdType
    {
        Video,
        RewardedVideo,
        Playable,
        Interstitial,
        OfferWall,
        Banner,
        /// <summary>An ad shown as the app opens or comes back to the foreground.</summary>
        AppOpen,
    }

    /// <summary>
    /// Why an ad failed to show (<see cref="AdAction.FailedShow"/>); sent as <c>ad_fail_show_reason</c> in snake_case
    /// (<c>no_fill</c>, <c>unable_to_precache</c>, ...), the values GameAnalytics takes.
    /// </summary>
    public enum AdFailShowReason
    {
        Unknown,
        Offline,
        NoFill,
        InternalError,
        InvalidRequest,
        UnableToPrecache,
    }

    /// <summary>The store a purchase receipt comes from.</summary>
    public enum PurchaseStore
    {
        Apple,
        GooglePlay,
    }

    /// <summary>How far the store got with a purchase (<c>status</c> in protocol.md 4.9).</summary>
    public enum PurchaseStatus
    {
        Completed,
        Processing,
    }

    /// <summary>Where the client stands with the daemon (<see cref="BridgeClient.State"/>, <see cref="BridgeClient.ConnectionChanged"/>).</summary>
    public enum ConnectionState
    {
        /// <summary>Trying to connect: at start, and after a connection was lost.</summary>
        Connecting,

        /// <summary>The daemon welcomed this client; events flow.</summary>
        Connected,

        /// <summary>No daemon answers at the endpoint (none running, or one that is frozen); the client keeps trying.</summary>
        Unreachable,

        /// <summary>
        /// Something answers at the endpoint, but not an engine-bridge daemon this client can talk to: another
        /// program holds the port, the two endpoints are swapped, or the daemon refused <c>hello</c>.
        /// </summary>
        WrongPeer,

        /// <summary>This platform cannot run the client (WebGL): every call is a no-op.</summary>
        Unsupported,
    }

    /// <summary>How serious a message of the binding is; in Unity, Debug.Log, Debug.LogWarning or Debug.LogError.</summary>
    public enum BridgeLogLevel
    {
        Info,
        Warning,
        Error,
    }

    /// <summary>A player's answer for one purpose of the game's consent dialog (protocol.md section 4.10).</summary>
    public enum ConsentState
    {
        /// <summary>Left as it is.</summary>
        Unchanged,
        Granted,
        Denied,
    }
}
