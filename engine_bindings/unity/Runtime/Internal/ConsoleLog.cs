// The engine's console: Unity's (compiled only by Unity, where UNITY_5_3_OR_NEWER is defined), else standard error.
#if UNITY_5_3_OR_NEWER
using UnityEngine;
#endif
using System;

namespace EngineBridge.Internal
{
    /// <summary>
    /// The binding's messages for people: written on the game's thread at the next <see cref="BridgeClient.Pump"/>,
    /// to <see cref="BridgeSettings.Log"/> or else to the engine's console.
    /// </summary>
    internal sealed class ConsoleLog
    {
        private readonly Action<BridgeLogLevel, string> sink;
        private readonly CallbackQueue callbacks;

        public ConsoleLog(Action<BridgeLogLevel, string> sink, CallbackQueue callbacks)
        {
            this.sink = sink ?? WriteToConsole;
            this.callbacks = callbacks;
        }

        /// <summary>From any thread; the message reaches the sink at the next pump.</summary>
        public void Write(BridgeLogLevel level, string message)
        {
            callbacks.Post(delegate { sink(level, message); });
        }

        private static void WriteToConsole(BridgeLogLevel level, string message)
        {
            message = "engine-bridge: " + message;
#if UNITY_5_3_OR_NEWER
            switch (level)
            {
                case BridgeLogLevel.Info: Debug.Log(message); break;
                case BridgeLogLevel.Warning: Debug.LogWarning(message); break;
                default: Debug.LogError(message); break;
            }
#else
            Console.Error.WriteLine(level.ToString().ToLowerInvariant() + ": " + message);
#endif
        }
    }
}
