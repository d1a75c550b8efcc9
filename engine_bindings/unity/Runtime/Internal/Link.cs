using System;
using System.Threading;

namespace EngineBridge.Internal
{
    /// <summary>
    /// One background thread that keeps one ZMTP connection to the daemon alive: it connects, reconnects with
    /// a growing delay when the daemon is away or restarts, waits for input and lets the subclass send and
    /// receive. The delay doubles from 100 ms to 5 s, or to 250 ms for a daemon on this machine: a refused local
    /// connect costs microseconds, and a daemon that is back is then found before the queue fills. Any failure on
    /// this thread drops the connection, is kept in <see cref="LastError"/> and moves <see cref="State"/>; nothing
    /// here ever throws into the game.
    /// </summary>
    internal abstract class Link
    {
        private const int InitialBackoffMs = 100;
        private const int MaxBackoffMs = 5000;
        private const int MaxLoopbackBackoffMs = 250;
        private const int ConnectTimeoutMs = 2000;
        private const int SleepSliceMs = 50;

        private readonly ZmtpEndpoint endpoint;
        private readonly string socketType;
        private readonly string[] peerTypes;
        private readonly string threadName;
        private readonly long maxBackoffMs;
        private readonly Action<ConnectionState, string> stateChanged;
        private Thread thread;
        private volatile bool stopping;
        private volatile string lastError;
        private volatile ConnectionState state = ConnectionState.Connecting;
        private long backoffMs = InitialBackoffMs;
        private long nextAttemptMs;
        private long connections;

        /// <summary>The live connection, or null between a drop and the next successful connect.</summary>
        protected ZmtpConnection Connection;

        /// <param name="peerTypes">the daemon's socket types this link may talk to</param>
        /// <param name="stateChanged">called on this link's thread at each change of <see cref="State"/>, with why</param>
        protected Link(ZmtpEndpoint endpoint, string socketType, string[] peerTypes, string threadName,
                       Action<ConnectionState, string> stateChanged)
        {
            this.endpoint = endpoint;
            this.socketType = socketType;
            this.peerTypes = peerTypes;
            this.threadName = threadName;
            this.stateChanged = stateChanged;
            maxBackoffMs = endpoint.IsLoopback ? MaxLoopbackBackoffMs : MaxBackoffMs;
        }

        /// <summary>The latest failure seen on this link (connection, handshake or a refusal by the daemon); null once connected again.</summary>
        public string LastError
        {
            get { return lastError; }
            set { lastError = value; }
        }

        public ConnectionState State { get { return state; } }

        public ZmtpEndpoint Endpoint { get { return endpoint; } }

        /// <summary>Successful connections made so far.</summary>
        public long Connections { get { return Interlocked.Read(ref connections); } }

        /// <summary>Starts the thread; a link that is never started (an unsupported platform) has none.</summary>
        public void Start()
        {
            thread = new Thread(Run);
            thread.IsBackground = true;
            thread.Name = threadName;
            thread.Start();
        }

        /// <summary>Asks the thread to end and waits for it at most <paramref name="timeoutMs"/>.</summary>
        public void Stop(int timeoutMs)
        {
            stopping = true;
            if (thread != null) thread.Join(timeoutMs);
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

        /// <summary>
        /// Drops the connection and enters <paramref name="next"/>; the next attempt comes after the current delay,
        /// doubled if <paramref name="escalate"/>.
        /// </summary>
        protected void Drop(string reason, bool escalate, ConnectionState next = ConnectionState.Connecting)
        {
            LastError = reason;
            if (Connection != null)
            {
                Connection.Dispose();
                Connection = null;
                OnDisconnected();
            }
            SetState(next, reason);
            if (escalate) backoffMs = Math.Min(backoffMs * 2, maxBackoffMs);
            nextAttemptMs = Clock.Milliseconds + backoffMs;
        }

        /// <summary>The daemon accepted us: the error is over, and the next drop is retried quickly again.</summary>
        protected void OnAccepted(string how)
        {
            backoffMs = InitialBackoffMs;
            SetState(ConnectionState.Connected, how);
        }

        /// <summary>A daemon is about to listen (ours was just launched): try again at the shortest delay.</summary>
        protected void RetrySoon()
        {
            backoffMs = InitialBackoffMs;
            nextAttemptMs = Math.Min(nextAttemptMs, Clock.Milliseconds + InitialBackoffMs);
        }

        private void SetState(ConnectionState next, string reason)
        {
            if (next == state) return;
            if (next == ConnectionState.Connected) lastError = null;
            state = next;
            stateChanged(next, reason);
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
                Connection = ZmtpConnection.Open(endpoint, socketType, peerTypes, ConnectTimeoutMs);
            }
            catch (Exception e)
            {
                var zmtp = e as ZmtpException;
                if (zmtp != null && zmtp.ForeignPeer) Drop(endpoint + " is not the daemon: " + e.Message, true, ConnectionState.WrongPeer);
                else Drop("cannot reach the daemon at " + endpoint + ": " + e.Message, true, ConnectionState.Unreachable);
                return false;
            }
            Interlocked.Increment(ref connections);
            OnConnected();
            return true;
        }
    }
}
