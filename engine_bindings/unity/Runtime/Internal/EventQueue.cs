using System;
using System.Collections.Generic;

namespace EngineBridge.Internal
{
    /// <summary>
    /// The bounded in-memory queue between the game's threads and the I/O thread.
    ///
    /// Events are msgpack-encoded at Track time straight into a ring of preallocated byte buffers, one slot per
    /// event, addressed by a 64-bit sequence number: <c>head</c> is the oldest event not yet acknowledged,
    /// <c>sendNext</c> the first not yet sent on this connection, <c>tail</c> the next to be written. An event
    /// leaves the ring only when an ack covers it, so everything unacknowledged is resent after a reconnect
    /// (from <c>head</c>, with its original id). When the ring is full the oldest event is overwritten; it is counted
    /// as dropped only if it was never sent, since a sent one is counted by its ack when that comes.
    ///
    /// Producers hold <see cref="Gate"/> for one Track call (a few hundred nanoseconds); the I/O thread holds it
    /// only to reserve a batch and to copy it out in short chunks, so a game thread never waits on I/O.
    /// Requests other than events (sessions, flush, purchases) wait in a second, small queue, each placed after
    /// the events tracked before it so the daemon sees them in the order the game made them.
    /// </summary>
    internal sealed class EventQueue
    {
        /// <summary>Held by producers around BeginEvent/CommitEvent and by the I/O thread for short copies.</summary>
        public readonly object Gate = new object();

        private const int CopyChunk = 64;
        private const int MaxControls = 256;

        private readonly byte[][] slots;
        private readonly int[] lengths;
        private readonly bool[] sent;
        private readonly int capacity;
        private readonly MsgPackWriter writer;
        private readonly LinkedList<ControlRequest> controls = new LinkedList<ControlRequest>();
        private long head;
        private long sendNext;
        private long tail;
        private long tracked;
        private long dropped;
        private long resent;
        private ulong random0;
        private ulong random1;

        public EventQueue(int capacity, int slotBytes)
        {
            this.capacity = capacity;
            slots = new byte[capacity][];
            lengths = new int[capacity];
            sent = new bool[capacity];
            for (int i = 0; i < capacity; i++) slots[i] = new byte[slotBytes];
            writer = new MsgPackWriter(0);
            byte[] seed = Guid.NewGuid().ToByteArray();
            random0 = BitConverter.ToUInt64(seed, 0) | 1;
            random1 = BitConverter.ToUInt64(seed, 8);
        }

        /// <summary>
        /// Starts an event in the next slot (dropping the oldest event if the ring is full) and writes its
        /// envelope: the id (a fresh UUID v4 when <paramref name="id"/> is null), the category, the timestamp,
        /// the user if one is named, and the header of a <c>fields</c> map of <paramref name="fieldCount"/>
        /// entries that the caller writes next. Call under <see cref="Gate"/>, then <see cref="CommitEvent"/>.
        /// </summary>
        public MsgPackWriter BeginEvent(byte[] category, int fieldCount, long timestampMs, string id, string userId)
        {
            if (tail - head == capacity)
            {
                if (!sent[Index(head)]) dropped++;
                head++;
                if (sendNext < head) sendNext = head;
            }
            sent[Index(tail)] = false;
            writer.Attach(slots[Index(tail)]);
            writer.WriteMapHeader(userId == null ? 4 : 5);
            writer.WriteRaw(Wire.Id);
            if (id == null) writer.WriteUuid(NextRandom(), NextRandom());
            else writer.WriteString(id);
            writer.WriteRaw(Wire.Category);
            writer.WriteRaw(category);
            writer.WriteRaw(Wire.Ts);
            writer.WriteInt(timestampMs);
            if (userId != null)
            {
                writer.WriteRaw(Wire.UserId);
                writer.WriteString(userId);
            }
            writer.WriteRaw(Wire.Fields);
            writer.WriteMapHeader(fieldCount);
            return writer;
        }

        /// <summary>Makes the event written since <see cref="BeginEvent"/> visible to the I/O thread.</summary>
        public void CommitEvent()
        {
            int index = Index(tail);
            slots[index] = writer.Buffer;
            lengths[index] = writer.Length;
            tail++;
            tracked++;
        }

        /// <summary>Counts an event that was refused without entering the ring (tracked after shutdown).</summary>
        public void CountDropped()
        {
            lock (Gate) dropped++;
        }

        /// <summary>
        /// Reserves the next events to send, up to <paramref name="limit"/> (exclusive sequence number), at most
        /// <paramref name="maxEvents"/> and about <paramref name="maxBytes"/>; returns how many, 0 when none.
        /// </summary>
        public int ReserveBatch(long limit, int maxEvents, int maxBytes, out long first)
        {
            lock (Gate)
            {
                if (sendNext < head) sendNext = head;
                first = sendNext;
                long available = Math.Min(limit, tail) - sendNext;
                int count = 0;
                long bytes = 0;
                while (count < available && count < maxEvents)
                {
                    int length = lengths[Index(first + count)];
                    if (count > 0 && bytes + length > maxBytes) break;
                    bytes += length;
                    count++;
                }
                sendNext += count;
                return count;
            }
        }

        /// <summary>
        /// Appends the reserved events' bytes to <paramref name="output"/>, holding the gate only a chunk at a
        /// time. A slot overwritten meanwhile (the ring overflowed) now holds a newer complete event; sending it
        /// early is harmless: it is sent again in its turn and the daemon deduplicates it. Each slot copied is
        /// marked sent, per slot rather than per sequence number, so that such an early copy counts too.
        /// </summary>
        public void CopyBatch(long first, int count, MsgPackWriter output)
        {
            for (int done = 0; done < count; done += CopyChunk)
            {
                int chunkEnd = Math.Min(count, done + CopyChunk);
                lock (Gate)
                {
                    for (int i = done; i < chunkEnd; i++)
                    {
                        int index = Index(first + i);
                        output.WriteRaw(slots[index], 0, lengths[index]);
                        sent[index] = true;
                    }
                }
            }
        }

        /// <summary>Forgets every event before <paramref name="end"/>: an ack covered them.</summary>
        public void Release(long end)
        {
            lock (Gate)
            {
                if (end > head) head = end;
                if (sendNext < head) sendNext = head;
            }
        }

        /// <summary>After a reconnect or a transient error: everything not acknowledged is to be sent again.</summary>
        public void RewindUnacknowledged()
        {
            lock (Gate)
            {
                if (sendNext > head) resent += sendNext - head;
                sendNext = head;
                foreach (var control in controls) control.InFlight = false;
            }
        }

        /// <summary>True once every event before <paramref name="sequence"/> is acknowledged or dropped.</summary>
        public bool ReleasedBefore(long sequence)
        {
            lock (Gate) return head >= sequence;
        }

        /// <summary>Queues a non-event request behind the events tracked so far; the oldest goes if 256 wait.</summary>
        public void EnqueueControl(ControlRequest request)
        {
            ControlRequest evicted = null;
            lock (Gate)
            {
                if (controls.Count == MaxControls)
                {
                    evicted = controls.First.Value;
                    controls.RemoveFirst();
                }
                request.AfterSequence = tail;
                controls.AddLast(request);
            }
            if (evicted != null) evicted.Fail("dropped", "more than " + MaxControls + " requests waited for the daemon");
        }

        /// <summary>The oldest waiting request, or null.</summary>
        public ControlRequest PeekControl()
        {
            lock (Gate) return controls.Count == 0 ? null : controls.First.Value;
        }

        public void RemoveControl(ControlRequest request)
        {
            lock (Gate) controls.Remove(request);
        }

        /// <summary>Puts requests that were sent and taken out of the queue back at its front, in order, to be sent again.</summary>
        public void RequeueControls(List<ControlRequest> requests)
        {
            lock (Gate)
            {
                for (int i = requests.Count - 1; i >= 0; i--)
                {
                    requests[i].InFlight = false;
                    controls.AddFirst(requests[i]);
                }
            }
        }

        /// <summary>True when nothing waits to be sent or acknowledged.</summary>
        public bool IsDrained
        {
            get { lock (Gate) return head == tail && controls.Count == 0; }
        }

        /// <summary>Fills the queue's part of the stats.</summary>
        public void ReadCounters(ref BridgeStats stats)
        {
            lock (Gate)
            {
                stats.Tracked = tracked;
                stats.Queued = tail - head;
                stats.InFlight = Math.Max(0, sendNext - head);
                stats.Dropped = dropped;
                stats.Resent = resent;
            }
        }

        private int Index(long sequence)
        {
            return (int)(sequence % capacity);
        }

        /// <summary>xorshift128+: fast, allocation-free randomness for event ids (seeded from a random Guid).</summary>
        private ulong NextRandom()
        {
            ulong s1 = random0;
            ulong s0 = random1;
            random0 = s0;
            s1 ^= s1 << 23;
            random1 = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
            return random1 + s0;
        }
    }
}
