namespace EngineBridge
{
    /// <summary>
    /// The outcome of a purchase (protocol.md 4.9): the store's verdict on its receipt, or why the request failed.
    /// Given to the <see cref="BridgeClient.VerifyPurchase"/> callback and to <see cref="BridgeClient.PurchaseVerified"/>
    /// on the pump thread.
    /// </summary>
    public sealed class PurchaseResult
    {
        internal PurchaseResult(string id, PurchaseStore? store, string errorCode, string message, bool isValid,
                                bool isDuplicate, string reason, long? verifiedAtMs)
        {
            Id = id;
            Store = store;
            ErrorCode = errorCode;
            Message = message;
            IsValid = isValid;
            IsDuplicate = isDuplicate;
            Reason = reason;
            VerifiedAtMs = verifiedAtMs;
        }

        /// <summary>The purchase's id, as <see cref="BridgeClient.VerifyPurchase"/> returned it.</summary>
        public string Id { get; private set; }

        /// <summary>The store the receipt came from; null if the daemon named one this binding does not know.</summary>
        public PurchaseStore? Store { get; private set; }

        /// <summary>
        /// True when this is a verdict. False when the request failed and no verdict will come for it:
        /// <see cref="ErrorCode"/> is one of protocol.md section 6 (<c>not_configured</c>, <c>invalid_value</c>, ...)
        /// or this side's <c>dropped</c> (too many requests waited) or <c>shut_down</c>.
        /// </summary>
        public bool Ok { get { return ErrorCode == null; } }

        public string ErrorCode { get; private set; }

        /// <summary>What went wrong, for people; null for a verdict.</summary>
        public string Message { get; private set; }

        /// <summary>The store's server accepted the receipt.</summary>
        public bool IsValid { get; private set; }

        /// <summary>The receipt had been verified before: a replayed receipt, not a new purchase.</summary>
        public bool IsDuplicate { get; private set; }

        /// <summary>Why, in the daemon's words: <c>verified by staq</c>, or why a forged receipt was refused.</summary>
        public string Reason { get; private set; }

        /// <summary>When the daemon recorded the verdict (ms since the Unix epoch); null when the reply carried it, which does not say.</summary>
        public long? VerifiedAtMs { get; private set; }

        /// <summary>Grant the item: a verdict, a valid receipt, and not one already spent.</summary>
        public bool ShouldGrant { get { return Ok && IsValid && !IsDuplicate; } }

        public override string ToString()
        {
            return Ok ? "purchase " + Id + ": " + (IsValid ? "valid" : "invalid") + (IsDuplicate ? ", duplicate" : "") + " (" + Reason + ")"
                      : "purchase " + Id + ": " + ErrorCode + ": " + Message;
        }
    }
}
