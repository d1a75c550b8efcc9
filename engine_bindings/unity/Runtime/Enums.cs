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
}
