using System;
using System.Threading;

namespace EngineBridge.Internal
{
    /// <summary>
    /// One background thread that keeps one ZMTP connection to the daemon alive: it connects, reconnects with
    /// a growing delay (100 ms doubling to 5 s) when the daemon is away or restarts, waits for input and lets
    /// the subclass send and receive. Any failure on this thread drops the connection and is kept in
    /// <see cref="LastError"/>; nothing here ever throws into the game.
    /// </summary>
    internal abstract class Link
    {
        private const int InitialBackoffMs = 100;
        private const int MaxBackoffMs = 5000;
        private const int ConnectTimeoutMs = 2000;
        private const int SleepSliceMs = 50;

        private readonly ZmtpEndpoint endpoint;
        private readonly string socketType;
        private readonly Thread thread;
        private volatile bool stopping;
        private volatile string lastError;
        private long backoffMs = InitialBackoffMs;
        private long nextAttemptMs;
        private long connections;

        /// <summary>The live connection, or null between a drop and the next successful connect.</summary>
        protected ZmtpConnection Connection;

        protected Link(ZmtpEndpoint endpoint, string socketType, string threadName)
        {
            this.endpoint = endpoint;
            this.socketType = socketType;
            thread = new Thread(Run);
            thread.IsBackground = true;
            thread.Name = threadName;
        }

        /// <summary>The latest failure seen on this link (connection, handshake or a refusal by the daemon).</summary>
        public string LastError
        {
            get { return lastError; }
            set { lastError = value; }
        }

        /// <summary>Successful connections made so far.</summary>
        public long Connections { get { return Interlocked.Read(ref connections); } }

        public void Start()
        {
            thread.Start();
        }

        /// <summary>Asks the thread to end and waits for it at most <paramref name="timeoutMs"/>.</summary>
        public void Stop(int timeoutMs)
        {
            stopping = true;
            thread.Join(timeoutMs);
        }

        /// <summary>Called once the handshake is done: say hello, subscribe, ...</summary>
        protected abstract void OnConnected();

        /// <summary>Called after the connection was dropped, before the next attempt.</summary>
        protected abstract void OnDisconnected();

        /// <summary>Sends what is due; returns how long the thread may then wait for input (ms).</summary>
        protected abstract int Work();

        /// <summary>Handles one received message frame.</summary>
        protected abstract void OnFrame(ZmtpFrame frame);

        /// <summary>Called on every turn of the thread while there is no connection.</summary>
        protected virtual void WhileDisconnected()
        {
        }

        /// <summary>Drops the connection; the next attempt comes after the current delay, doubled if <paramref name="escalate"/>.</summary>
        protected void Drop(string reason, bool escalate)
        {
            LastError = reason;
            if (Connection != null)
            {
                Connection.Dispose();
                Connection = null;
                OnDisconnected();
            }
            if (escalate) backoffMs = Math.Min(backoffMs * 2, MaxBackoffMs);
            nextAttemptMs = Clock.Milliseconds + backoffMs;
        }

        /// <summary>The daemon accepted us: the next drop is retried quickly again.</summary>
        protected void ResetBackoff()
        {
            backoffMs = InitialBackoffMs;
        }

        private void Run()
        {
            while (!stopping)
            {
                try
                {
                    if (Connection == null)
                    {
                        WhileDisconnected();
                        if (!TryConnect()) continue;
                    }
                    int waitMs = Work();
                    if (Connection == null) continue;
                    if (Connection.WaitReadable(waitMs) && !Connection.Fill())
                    {
                        Drop("the daemon closed the connection", false);
                        continue;
                    }
                    ZmtpFrame frame;
                    while (Connection != null && Connection.TryNextFrame(out frame)) OnFrame(frame);
                    if (Connection == null) continue;
                    bool lost = Connection.IsClosed;
                    if (!Connection.KeepAlive())
                    {
                        Drop(lost ? "the connection to the daemon was lost" : "the daemon was silent past the heartbeat TTL", false);
                    }
                }
                catch (Exception e)
                {
                    Drop(e.GetType().Name + ": " + e.Message, true);
                }
            }
            if (Connection != null)
            {
                Connection.Dispose();
                Connection = null;
            }
        }

        private bool TryConnect()
        {
            long wait = nextAttemptMs - Clock.Milliseconds;
            if (wait > 0)
            {
                Thread.Sleep((int)Math.Min(wait, SleepSliceMs));
                return false;
            }
            try
            {
                Connection = ZmtpConnection.Open(endpoint, socketType, ConnectTimeoutMs);
            }
            catch (Exception e)
            {
                Drop("cannot reach the daemon at " + endpoint + ": " + e.Message, true);
                return false;
            }
            Interlocked.Increment(ref connections);
            OnConnected();
            return true;
        }
    }
}
