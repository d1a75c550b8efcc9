using System.Collections.Generic;

namespace EngineBridge
{
    /// <summary>A purchase to verify through the daemon (protocol.md 4.9); see <see cref="BridgeClient.VerifyPurchase"/>.</summary>
    public sealed class PurchaseReceipt
    {
        public PurchaseStore Store;

        /// <summary>The store's receipt as given to the game (base64 for Apple, the purchase data for Google Play); 1 to 65536 chars.</summary>
        public string Receipt;

        /// <summary>The purchase data's signature; required for Google Play, not sent for Apple.</summary>
        public string Signature;

        /// <summary>The price in US dollars, if known; must be finite and not negative.</summary>
        public double? PriceUsd;

        /// <summary>Optional, e.g. <c>processing</c> or <c>completed</c>.</summary>
        public string Status;

        public string Comment;

        /// <summary>Optional extra data passed on with the purchase (msgpack-encodable values).</summary>
        public IDictionary<string, object> Metadata;
    }

    /// <summary>The daemon's answer to a purchase verification, given to the callback on the pump thread.</summary>
    public sealed class PurchaseResult
    {
        /// <summary>The id <see cref="BridgeClient.VerifyPurchase"/> returned.</summary>
        public readonly string PurchaseId;

        /// <summary>Null on success; else the daemon's error code (<c>not_configured</c> until a staq provider is set up).</summary>
        public readonly string ErrorCode;

        public readonly string ErrorMessage;

        /// <summary>The reply's fields as the daemon sent them.</summary>
        public readonly IDictionary<string, object> Fields;

        internal PurchaseResult(string purchaseId, string errorCode, string errorMessage, IDictionary<string, object> fields)
        {
            PurchaseId = purchaseId;
            ErrorCode = errorCode;
            ErrorMessage = errorMessage;
            Fields = fields;
        }

        public bool Succeeded { get { return ErrorCode == null; } }
    }
}
