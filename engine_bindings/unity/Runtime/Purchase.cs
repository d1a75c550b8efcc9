using System.Collections.Generic;

namespace EngineBridge
{
    /// <summary>A purchase receipt to verify through the daemon (protocol.md 4.9); see <see cref="BridgeClient.VerifyPurchase"/>.</summary>
    public sealed class Purchase
    {
        /// <summary>1 to 64 chars of A–Z a–z 0–9 - _ . : , deduplicated like event ids; null: a fresh UUID v4.</summary>
        public string Id;

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
}
