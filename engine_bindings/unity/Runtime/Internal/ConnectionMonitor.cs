using System;

namespace EngineBridge.Internal
{
    /// <summary>
    /// Tells the game how the links fare: every change of the ingress link's state to the
    /// <see cref="BridgeClient.ConnectionChanged"/> handlers, and to the engine's console once per outage when
    /// the daemon cannot be reached or something else answers at its endpoint (for the configs link only the
    /// latter: with the daemon away the ingress link already said so), then once more when it is back.
    /// </summary>
    internal sealed class ConnectionMonitor
    {
        private readonly CallbackQueue callbacks;
        private readonly ConsoleLog log;
        private readonly string launchCommand;
        private readonly object gate = new object();
        private readonly Outage ingress = new Outage();
        private readonly Outage configs = new Outage();
        private volatile Action<ConnectionState, string> handlers;

        /// <param name="launchCommand">the daemon this client starts when none answers, or null</param>
        public ConnectionMonitor(CallbackQueue callbacks, ConsoleLog log, string launchCommand)
        {
            this.callbacks = callbacks;
            this.log = log;
            this.launchCommand = launchCommand;
        }

        public void AddHandler(Action<ConnectionState, string> handler)
        {
            lock (gate) handlers += handler;
        }

        public void RemoveHandler(Action<ConnectionState, string> handler)
        {
            lock (gate) handlers -= handler;
        }

        /// <summary>On the ingress thread.</summary>
        public void OnIngress(ConnectionState state, string reason)
        {
            callbacks.Post(delegate
            {
                var current = handlers;
                if (current != null) current(state, reason);
            });
            Report(ingress, state, reason, true);
        }

        /// <summary>On the configs thread.</summary>
        public void OnConfigs(ConnectionState state, string reason)
        {
            Report(configs, state, reason, false);
        }

        private void Report(Outage outage, ConnectionState state, string reason, bool unreachableToo)
        {
            switch (state)
            {
                case ConnectionState.Connected:
                    if (outage.Reported.HasValue) log.Write(BridgeLogLevel.Info, reason);
                    outage.Reported = null;
                    return;
                case ConnectionState.Unreachable:
                    if (!unreachableToo || outage.Reported == state) return;
                    outage.Reported = state;
                    log.Write(BridgeLogLevel.Warning, reason + ". Events wait in memory until it answers; "
                              + (launchCommand != null ? "this game starts it (BridgeSettings.Daemon: " + launchCommand + ")."
                                                       : "start it with `engine-bridge run`, or set BridgeSettings.Daemon to have the game start it."));
                    return;
                case ConnectionState.WrongPeer:
                    if (outage.Reported == state) return;
                    outage.Reported = state;
                    log.Write(BridgeLogLevel.Error, reason + ". Check that IngressEndpoint and ConfigsEndpoint name the daemon's"
                              + " --ingress and --publish, and that no other program holds those ports.");
                    return;
            }
        }

        /// <summary>What the console was told about one link since it was last connected; touched by that link's thread only.</summary>
        private sealed class Outage
        {
            public ConnectionState? Reported;
        }
    }
}
