using System;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EngineBridge.Internal
{
    /// <summary>A <c>tcp://host:port</c> endpoint, checked when the settings are given rather than on the I/O thread.</summary>
    internal sealed class ZmtpEndpoint
    {
        public readonly string Host;
        public readonly int Port;
        /// <summary>The socket file of an <c>ipc://</c> endpoint (a Unix domain socket), else null.</summary>
        public readonly string Path;

        private ZmtpEndpoint(string host, int port, string path = null)
        {
            Host = host;
            Port = port;
            Path = path;
        }

        /// <summary>Parses an endpoint; ArgumentException names the setting when it is not <c>tcp://host:port</c>.</summary>
        public static ZmtpEndpoint Parse(string endpoint, string settingName)
        {
            if (endpoint == null) throw new ArgumentNullException(settingName);
            if (endpoint.StartsWith("ipc://", StringComparison.Ordinal) && endpoint.Length > 6)
            {
                return new ZmtpEndpoint("localhost", 0, endpoint.Substring(6));
            }
            const string scheme = "tcp://";
            int colon = endpoint.LastIndexOf(':');
            int port;
            if (!endpoint.StartsWith(scheme, StringComparison.Ordinal) || colon <= scheme.Length
                || !int.TryParse(endpoint.Substring(colon + 1), System.Globalization.NumberStyles.None,
                                 System.Globalization.CultureInfo.InvariantCulture, out port)
                || port < 1 || port > 65535)
            {
                throw new ArgumentException("expected tcp://host:port or ipc://path, got \""
                                            + endpoint + "\"", settingName);
            }
            string host = endpoint.Substring(scheme.Length, colon - scheme.Length);
            if (host.StartsWith("[", StringComparison.Ordinal) && host.EndsWith("]", StringComparison.Ordinal))
            {
                host = host.Substring(1, host.Length - 2);
            }
            if (host == "*") throw new ArgumentException("a client endpoint needs a host, not *", settingName);
            return new ZmtpEndpoint(host, port);
        }

        /// <summary>True for a daemon on this machine: <c>localhost</c> or a loopback address.</summary>
        public bool IsLoopback
        {
            get
            {
                IPAddress address;
                return Host == "localhost" || (IPAddress.TryParse(Host, out address) && IPAddress.IsLoopback(address));
            }
        }

        public IPAddress Resolve()
        {
            IPAddress address;
            if (IPAddress.TryParse(Host, out address)) return address;
            IPAddress[] candidates = Dns.GetHostAddresses(Host);
            if (candidates.Length == 0) throw new ZmtpException("no address for host " + Host);
            foreach (var candidate in candidates)
            {
                if (candidate.AddressFamily == AddressFamily.InterNetwork) return candidate;   // loopback daemons listen on IPv4
            }
            return candidates[0];
        }

        public override string ToString()
        {
            if (Path != null) return "ipc://" + Path;
            return "tcp://" + Host + ":" + Port;
        }
    }

    /// <summary>One frame received: Buffer[Offset .. Offset+Count), valid until the next <see cref="ZmtpConnection.Fill"/>.</summary>
    internal struct ZmtpFrame
    {
        public byte[] Buffer;
        public int Offset;
        public int Count;
        public bool More;
    }

    /// <summary>
    /// One ZMTP 3.1 connection with the NULL mechanism (rfc.zeromq.org/spec/23 and /37), as the client side of a
    /// DEALER or SUB socket. It answers the peer's PINGs, sends its own, and reports a peer that stays silent
    /// past the heartbeat TTL, so a frozen daemon is noticed as surely as a dead one.
    /// </summary>
    internal sealed class ZmtpConnection : IDisposable
    {
        public const int PingIntervalMs = 5000;
        public const int HeartbeatTtlMs = 15000;
        private const int MaxFrameBytes = 16 * 1024 * 1024;
        private const byte FlagMore = 0x01, FlagLong = 0x02, FlagCommand = 0x04;

        private static readonly byte[] PingCommand = BuildPing();

        private readonly Socket socket;
        private readonly byte[] header = new byte[9];
        private byte[] received = new byte[64 * 1024];
        private int start;
        private int end;
        private bool peerHeartbeats;
        private long lastReceivedMs;
        private long lastPingMs;
        private bool closed;

        private ZmtpConnection(Socket socket)
        {
            this.socket = socket;
        }

        /// <summary>
        /// Connects, exchanges greetings and READY commands; throws (SocketException, ZmtpException) on any failure,
        /// within about <paramref name="timeoutMs"/> for each step. A peer that is not a ZeroMQ socket of one of
        /// <paramref name="peerTypes"/> throws a ZmtpException whose <see cref="ZmtpException.ForeignPeer"/> is set.
        /// </summary>
        public static ZmtpConnection Open(ZmtpEndpoint endpoint, string socketType, string[] peerTypes, int timeoutMs)
        {
            bool unix = endpoint.Path != null;
            IPAddress address = unix ? null : endpoint.Resolve();
            var socket = unix ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
                              : new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            var connection = new ZmtpConnection(socket);
            try
            {
                if (!unix) socket.NoDelay = true;
                EndPoint remote = unix ? (EndPoint)new UnixDomainSocketEndPoint(endpoint.Path) : new IPEndPoint(address, endpoint.Port);
                IAsyncResult pending = socket.BeginConnect(remote, null, null);
                if (!pending.AsyncWaitHandle.WaitOne(timeoutMs))
                {
                    throw new ZmtpException("connect to " + endpoint + " timed out");
                }
                socket.EndConnect(pending);
                socket.ReceiveTimeout = timeoutMs;
                socket.SendTimeout = timeoutMs;
                connection.Handshake(socketType, peerTypes);
                socket.ReceiveTimeout = 0;
                socket.SendTimeout = HeartbeatTtlMs;
                connection.lastReceivedMs = connection.lastPingMs = Clock.Milliseconds;
                return connection;
            }
            catch
            {
                connection.Dispose();
                throw;
            }
        }

        public bool IsClosed { get { return closed; } }

        /// <summary>Sends one frame; false (and the connection is closed) if the peer is gone.</summary>
        public bool Send(byte[] body, int offset, int count, bool more)
        {
            int headerLength = PutHeader(more ? FlagMore : (byte)0, count);
            return SendAll(header, 0, headerLength) && SendAll(body, offset, count);
        }

        /// <summary>Waits up to <paramref name="timeoutMs"/> for bytes to read (or for the peer to close).</summary>
        public bool WaitReadable(int timeoutMs)
        {
            if (closed) return false;
            try
            {
                return socket.Poll(timeoutMs * 1000, SelectMode.SelectRead);
            }
            catch (SocketException)
            {
                closed = true;
                return false;
            }
            catch (ObjectDisposedException)
            {
                closed = true;
                return false;
            }
        }

        /// <summary>Reads what the socket holds into the buffer; false when the peer has closed the connection.</summary>
        public bool Fill()
        {
            if (closed) return false;
            EnsureRoom(end - start + 4096);
            SocketError error;
            int n;
            try
            {
                n = socket.Receive(received, end, received.Length - end, SocketFlags.None, out error);
            }
            catch (ObjectDisposedException)
            {
                n = 0;
                error = SocketError.Shutdown;
            }
            if (error == SocketError.WouldBlock || error == SocketError.TimedOut) return true;
            if (n <= 0 || error != SocketError.Success)
            {
                closed = true;
                return false;
            }
            end += n;
            lastReceivedMs = Clock.Milliseconds;
            return true;
        }

        /// <summary>
        /// The next complete message frame in the buffer, if any. Commands are handled here: PING is answered with
        /// PONG, ERROR closes the connection, others are ignored.
        /// </summary>
        public bool TryNextFrame(out ZmtpFrame frame)
        {
            frame = default(ZmtpFrame);
            while (!closed)
            {
                byte flags;
                int bodyOffset, bodyLength;
                if (!TryParse(out flags, out bodyOffset, out bodyLength)) return false;
                start = bodyOffset + bodyLength;
                if ((flags & FlagCommand) == 0)
                {
                    frame.Buffer = received;
                    frame.Offset = bodyOffset;
                    frame.Count = bodyLength;
                    frame.More = (flags & FlagMore) != 0;
                    return true;
                }
                HandleCommand(bodyOffset, bodyLength);
            }
            return false;
        }

        /// <summary>Sends a PING when one is due; false when the peer has been silent past the heartbeat TTL.</summary>
        public bool KeepAlive()
        {
            if (closed) return false;
            long now = Clock.Milliseconds;
            if (!peerHeartbeats) return true;
            if (now - lastReceivedMs > HeartbeatTtlMs)
            {
                closed = true;
                return false;
            }
            if (now - lastPingMs >= PingIntervalMs)
            {
                lastPingMs = now;
                return SendCommand(PingCommand, PingCommand.Length);
            }
            return true;
        }

        public void Dispose()
        {
            closed = true;
            try
            {
                socket.Close(0);
            }
            catch (SocketException)
            {
                // Already gone: nothing left to release.
            }
        }

        private void Handshake(string socketType, string[] peerTypes)
        {
            var greeting = new byte[64];
            greeting[0] = 0xff;
            greeting[9] = 0x7f;
            greeting[10] = 3;
            greeting[11] = 1;
            Encoding.ASCII.GetBytes("NULL", 0, 4, greeting, 12);
            if (!SendAll(greeting, 0, greeting.Length)) throw new ZmtpException("peer closed during the greeting");
            // The signature alone tells a ZeroMQ peer from any other program, which may send less than a greeting.
            ReadAtLeast(10);
            if (received[0] != 0xff || received[9] != 0x7f) throw Foreign("answers, but not in ZeroMQ's protocol (ZMTP)");
            ReadAtLeast(64);
            if (received[10] < 3) throw Foreign("speaks ZMTP " + received[10] + ".x, an older ZeroMQ than engine-bridge's 3.x");
            peerHeartbeats = received[10] > 3 || received[11] >= 1;
            string mechanism = Encoding.ASCII.GetString(received, 12, 20).TrimEnd('\0');
            if (mechanism != "NULL") throw Foreign("is a ZeroMQ socket with " + mechanism + " security, which engine-bridge does not use");
            start = 64;

            var ready = new CommandBuilder(64);
            ready.PutShortString("READY");
            ready.PutShortString("Socket-Type");
            ready.PutLongString(socketType);
            if (!SendCommand(ready.Bytes, ready.Length)) throw new ZmtpException("peer closed during the handshake");

            while (true)
            {
                byte flags;
                int bodyOffset, bodyLength;
                while (!TryParse(out flags, out bodyOffset, out bodyLength)) ReadAtLeast(end - start + 1);
                start = bodyOffset + bodyLength;
                if ((flags & FlagCommand) == 0) throw Foreign("sent a message before its ZMTP READY");
                string name = CommandName(bodyOffset, bodyLength);
                if (name == "ERROR") throw Foreign("refused the ZeroMQ handshake: " + ErrorReason(bodyOffset, bodyLength));
                if (name != "READY") continue;
                string peerType = SocketTypeOf(bodyOffset, bodyLength);
                if (Array.IndexOf(peerTypes, peerType) >= 0) return;
                throw Foreign("is a ZeroMQ " + peerType + " socket where engine-bridge has a " + string.Join(" or ", peerTypes)
                              + " (another ZeroMQ program, or the ingress and configs endpoints swapped)");
            }
        }

        /// <summary>The Socket-Type property of a READY command (rfc.zeromq.org/spec/23: name, then name/value pairs).</summary>
        private string SocketTypeOf(int offset, int length)
        {
            int end = offset + length;
            int at = offset + 1 + received[offset];
            while (at < end)
            {
                int nameLength = received[at];
                int valueAt = at + 1 + nameLength + 4;
                if (valueAt > end) break;
                int valueLength = (received[valueAt - 4] << 24) | (received[valueAt - 3] << 16) | (received[valueAt - 2] << 8) | received[valueAt - 1];
                if (valueLength < 0 || valueLength > end - valueAt) break;
                string name = Encoding.ASCII.GetString(received, at + 1, nameLength);
                if (string.Equals(name, "Socket-Type", StringComparison.OrdinalIgnoreCase))
                {
                    return Encoding.ASCII.GetString(received, valueAt, valueLength);
                }
                at = valueAt + valueLength;
            }
            return "(untyped)";
        }

        private static ZmtpException Foreign(string message)
        {
            return new ZmtpException("the peer " + message, true);
        }

        private void HandleCommand(int offset, int length)
        {
            string name = CommandName(offset, length);
            if (name == "PING")
            {
                // PING = name, 2-byte TTL, context; PONG carries the context back.
                int contextOffset = offset + 1 + 4 + 2;
                int contextLength = Math.Max(0, offset + length - contextOffset);
                var pong = new byte[1 + 4 + contextLength];
                pong[0] = 4;
                Encoding.ASCII.GetBytes("PONG", 0, 4, pong, 1);
                Buffer.BlockCopy(received, contextOffset, pong, 5, contextLength);
                SendCommand(pong, pong.Length);
            }
            else if (name == "ERROR")
            {
                closed = true;
            }
        }

        private string CommandName(int offset, int length)
        {
            int nameLength = length > 0 ? received[offset] : 0;
            if (nameLength == 0 || nameLength > length - 1) throw new ZmtpException("malformed ZMTP command");
            return Encoding.ASCII.GetString(received, offset + 1, nameLength);
        }

        private string ErrorReason(int offset, int length)
        {
            int reasonAt = offset + 1 + received[offset];
            if (reasonAt >= offset + length) return "(no reason)";
            int reasonLength = Math.Min(received[reasonAt], offset + length - reasonAt - 1);
            return Encoding.ASCII.GetString(received, reasonAt + 1, reasonLength);
        }

        /// <summary>Finds the next whole frame in [start, end) without consuming it.</summary>
        private bool TryParse(out byte flags, out int bodyOffset, out int bodyLength)
        {
            flags = 0;
            bodyOffset = bodyLength = 0;
            int available = end - start;
            if (available < 2) return false;
            flags = received[start];
            long size;
            int sizeBytes;
            if ((flags & FlagLong) != 0)
            {
                if (available < 9) return false;
                size = 0;
                for (int i = 1; i <= 8; i++) size = (size << 8) | received[start + i];
                sizeBytes = 8;
            }
            else
            {
                size = received[start + 1];
                sizeBytes = 1;
            }
            if (size < 0 || size > MaxFrameBytes) throw new ZmtpException("frame of " + size + " bytes is over the limit");
            bodyOffset = start + 1 + sizeBytes;
            bodyLength = (int)size;
            if (bodyOffset + bodyLength > end)
            {
                EnsureRoom(bodyOffset + bodyLength - start);
                return false;
            }
            return true;
        }

        private void ReadAtLeast(int count)
        {
            EnsureRoom(count);
            while (end - start < count)
            {
                int n = socket.Receive(received, end, received.Length - end, SocketFlags.None);
                if (n <= 0) throw new ZmtpException("peer closed during the handshake");
                end += n;
            }
        }

        /// <summary>Makes the buffer big enough to hold <paramref name="count"/> bytes from <c>start</c>.</summary>
        private void EnsureRoom(int count)
        {
            Compact();
            if (count <= received.Length) return;
            var grown = new byte[Math.Max(count, received.Length * 2)];
            Buffer.BlockCopy(received, 0, grown, 0, end);
            received = grown;
        }

        private void Compact()
        {
            if (start == 0) return;
            int pending = end - start;
            if (pending > 0) Buffer.BlockCopy(received, start, received, 0, pending);
            start = 0;
            end = pending;
        }

        private bool SendCommand(byte[] body, int count)
        {
            int headerLength = PutHeader(FlagCommand, count);
            return SendAll(header, 0, headerLength) && SendAll(body, 0, count);
        }

        private int PutHeader(byte flags, int count)
        {
            if (count <= byte.MaxValue)
            {
                header[0] = flags;
                header[1] = (byte)count;
                return 2;
            }
            header[0] = (byte)(flags | FlagLong);
            ulong size = (ulong)count;
            for (int i = 8; i >= 1; i--)
            {
                header[i] = (byte)size;
                size >>= 8;
            }
            return 9;
        }

        private bool SendAll(byte[] data, int offset, int count)
        {
            if (closed) return false;
            try
            {
                while (count > 0)
                {
                    SocketError error;
                    int n = socket.Send(data, offset, count, SocketFlags.None, out error);
                    if (n <= 0 || error != SocketError.Success)
                    {
                        closed = true;
                        return false;
                    }
                    offset += n;
                    count -= n;
                }
                return true;
            }
            catch (ObjectDisposedException)
            {
                closed = true;
                return false;
            }
        }

        private static byte[] BuildPing()
        {
            // name "PING", TTL 150 deciseconds (the daemon may drop us after 15 s of silence), empty context.
            var ping = new byte[1 + 4 + 2];
            ping[0] = 4;
            Encoding.ASCII.GetBytes("PING", 0, 4, ping, 1);
            ping[5] = 0;
            ping[6] = 150;
            return ping;
        }

        /// <summary>Builds a READY command body: short (1-byte length) and long (4-byte length) strings.</summary>
        private struct CommandBuilder
        {
            public byte[] Bytes;
            public int Length;

            public CommandBuilder(int capacity)
            {
                Bytes = new byte[capacity];
                Length = 0;
            }

            public void PutShortString(string value)
            {
                Bytes[Length++] = (byte)value.Length;
                Length += Encoding.ASCII.GetBytes(value, 0, value.Length, Bytes, Length);
            }

            public void PutLongString(string value)
            {
                Bytes[Length++] = 0;
                Bytes[Length++] = 0;
                Bytes[Length++] = 0;
                Bytes[Length++] = (byte)value.Length;
                Length += Encoding.ASCII.GetBytes(value, 0, value.Length, Bytes, Length);
            }
        }
    }

    /// <summary>A ZMTP handshake or framing failure; the connection is dropped and made again later.</summary>
    internal sealed class ZmtpException : Exception
    {
        public ZmtpException(string message, bool foreignPeer = false) : base(message)
        {
            ForeignPeer = foreignPeer;
        }

        /// <summary>The peer is not the daemon's kind of socket: another program holds the endpoint.</summary>
        public bool ForeignPeer { get; private set; }
    }

    /// <summary>A monotonic millisecond clock for timeouts and heartbeats (never the wall clock).</summary>
    internal static class Clock
    {
        private static readonly Stopwatch Watch = Stopwatch.StartNew();

        public static long Milliseconds { get { return Watch.ElapsedMilliseconds; } }
    }
}
