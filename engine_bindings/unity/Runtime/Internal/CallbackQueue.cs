using System;
using System.Collections.Generic;
using System.Threading;

namespace EngineBridge.Internal
{
    /// <summary>
    /// Callbacks posted by the I/O threads, run later on whichever thread calls <see cref="Pump"/> (in Unity
    /// the main thread, from Update), so game code never runs on a binding thread.
    /// </summary>
    internal sealed class CallbackQueue
    {
        private readonly object gate = new object();
        private int pumping;
        private List<Action> pending = new List<Action>();
        private List<Action> running = new List<Action>();

        public void Post(Action callback)
        {
            lock (gate) pending.Add(callback);
        }

        /// <summary>
        /// Runs every callback posted so far and returns how many ran. A callback that throws does not stop
        /// the others; the first exception is rethrown, wrapped, once all have run. A nested or concurrent
        /// call returns 0 at once. Costs one uncontended lock and no allocation when nothing is pending.
        /// </summary>
        public int Pump()
        {
            if (Interlocked.CompareExchange(ref pumping, 1, 0) != 0) return 0;
            try
            {
                lock (gate)
                {
                    if (pending.Count == 0) return 0;
                    var swap = running;
                    running = pending;
                    pending = swap;
                }
                Exception first = null;
                int ran = running.Count;
                for (int i = 0; i < running.Count; i++)
                {
                    try
                    {
                        running[i]();
                    }
                    catch (Exception e)
                    {
                        if (first == null) first = e;
                    }
                }
                running.Clear();
                if (first != null) throw new BridgeCallbackException(first);
                return ran;
            }
            finally
            {
                Volatile.Write(ref pumping, 0);
            }
        }
    }
}
