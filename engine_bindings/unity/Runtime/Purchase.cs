using System.Collections.Generic;

namespace EngineBridge
{
    /// <summary>A purchase receipt to verify through the daemon (protocol.md 4.9); see <see cref="BridgeClient.VerifyPurchase"/>.</summary>
    public sealed class Purchase
    {
        /// <summary>
        /// 1 to 64 chars of A–Z a–z 0–9 - _ . : , unique per device; null: a fresh UUID v4. Use the store's
        /// transaction id: verifying the same id again is the same purchase, never a second one.
        /// </summary>
        public string Id;

        public PurchaseStore Store;

        /// <summary>
        /// Standard base64, 1 to 65536 chars: Apple's receipt as StoreKit gives it, or Google Play's
        /// <c>INAPP_PURCHASE_DATA</c> (a JSON text) base64-encoded.
        /// </summary>
        public string Receipt;

        /// <summary>Google Play's <c>INAPP_DATA_SIGNATURE</c> (base64); required for Google Play, not sent for Apple.</summary>
        public string Signature;

        /// <summary>The price in US dollars, if known; must be finite and not negative.</summary>
        public double? PriceUsd;

        /// <summary>Null: <see cref="PurchaseStatus.Completed"/>, the daemon's default.</summary>
        public PurchaseStatus? Status;

        /// <summary>At most 1024 chars.</summary>
        public string Comment;

        /// <summary>Optional extra data passed on with the purchase (msgpack-encodable values).</summary>
        public IDictionary<string, object> Metadata;
    }
}
