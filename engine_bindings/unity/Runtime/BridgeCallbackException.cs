using System;

namespace EngineBridge
{
    /// <summary>
    /// Thrown by <see cref="BridgeClient.Pump"/> when a game callback threw: the callback's exception is the
    /// inner one. The other callbacks of that pump still ran.
    /// </summary>
    public sealed class BridgeCallbackException : Exception
    {
        public BridgeCallbackException(Exception inner)
            : base("an engine-bridge callback threw: " + inner.Message, inner)
        {
        }
    }
}
