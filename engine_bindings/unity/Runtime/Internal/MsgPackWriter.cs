using System;
using System.Collections;
using System.Runtime.InteropServices;

namespace EngineBridge.Internal
{
    /// <summary>
    /// Appends msgpack values to a growable byte buffer (spec: github.com/msgpack/msgpack/blob/master/spec.md).
    /// Integers take their smallest form and strings are encoded to UTF-8 in place, so writing scalars and
    /// strings never allocates: this is what keeps the Track calls allocation-free.
    /// </summary>
    internal sealed class MsgPackWriter
    {
        private byte[] buffer;
        private int position;

        public MsgPackWriter(int capacity)
        {
            buffer = new byte[capacity];
        }

        /// <summary>The bytes written so far are Buffer[0 .. Length).</summary>
        public byte[] Buffer { get { return buffer; } }

        public int Length { get { return position; } }

        /// <summary>Writes from the start of another buffer, which the writer then owns (it may grow it).</summary>
        public void Attach(byte[] target)
        {
            buffer = target;
            position = 0;
        }

        public void Reset()
        {
            position = 0;
        }

        /// <summary>A copy of the bytes written so far.</summary>
        public byte[] ToArray()
        {
            var bytes = new byte[position];
            System.Buffer.BlockCopy(buffer, 0, bytes, 0, position);
            return bytes;
        }

        /// <summary>The encoding of one string, for keys and names written many times.</summary>
        public static byte[] Encode(string value)
        {
            var writer = new MsgPackWriter(value.Length * 3 + 5);
            writer.WriteString(value);
            return writer.ToArray();
        }

        public void WriteNil()
        {
            Ensure(1);
            buffer[position++] = 0xc0;
        }

        public void WriteBool(bool value)
        {
            Ensure(1);
            buffer[position++] = value ? (byte)0xc3 : (byte)0xc2;
        }

        public void WriteInt(long value)
        {
            if (value >= 0)
            {
                WriteUInt((ulong)value);
                return;
            }
            Ensure(9);
            if (value >= -32)
            {
                buffer[position++] = (byte)(sbyte)value;
            }
            else if (value >= sbyte.MinValue)
            {
                buffer[position++] = 0xd0;
                buffer[position++] = (byte)(sbyte)value;
            }
            else if (value >= short.MinValue)
            {
                buffer[position++] = 0xd1;
                PutBigEndian((ulong)value, 2);
            }
            else if (value >= int.MinValue)
            {
                buffer[position++] = 0xd2;
                PutBigEndian((ulong)value, 4);
            }
            else
            {
                buffer[position++] = 0xd3;
                PutBigEndian((ulong)value, 8);
            }
        }

        public void WriteUInt(ulong value)
        {
            Ensure(9);
            if (value < 128)
            {
                buffer[position++] = (byte)value;
            }
            else if (value <= byte.MaxValue)
            {
                buffer[position++] = 0xcc;
                buffer[position++] = (byte)value;
            }
            else if (value <= ushort.MaxValue)
            {
                buffer[position++] = 0xcd;
                PutBigEndian(value, 2);
            }
            else if (value <= uint.MaxValue)
            {
                buffer[position++] = 0xce;
                PutBigEndian(value, 4);
            }
            else
            {
                buffer[position++] = 0xcf;
                PutBigEndian(value, 8);
            }
        }

        /// <summary>A float 32: what a C# float is, so it travels as the game gave it.</summary>
        public void WriteSingle(float value)
        {
            Ensure(5);
            buffer[position++] = 0xca;
            PutBigEndian(new Float32Bits { Value = value }.Bits, 4);
        }

        public void WriteDouble(double value)
        {
            Ensure(9);
            buffer[position++] = 0xcb;
            PutBigEndian((ulong)BitConverter.DoubleToInt64Bits(value), 8);
        }

        public void WriteString(string value)
        {
            int byteCount = Utf8Length(value);
            WriteStringHeader(byteCount);
            Ensure(byteCount);
            position = PutUtf8(value, position);
        }

        /// <summary>
        /// Writes the non-null parts joined by ':' as one string (an event id such as
        /// <c>Complete:world01:level01</c>) without building the joined string.
        /// </summary>
        public void WriteJoined(string p0, string p1, string p2, string p3, string p4)
        {
            int byteCount = -1;
            byteCount += PartLength(p0);
            byteCount += PartLength(p1);
            byteCount += PartLength(p2);
            byteCount += PartLength(p3);
            byteCount += PartLength(p4);
            WriteStringHeader(byteCount);
            Ensure(byteCount);
            bool first = true;
            PutPart(p0, ref first);
            PutPart(p1, ref first);
            PutPart(p2, ref first);
            PutPart(p3, ref first);
            PutPart(p4, ref first);
        }

        public void WriteBinary(byte[] value)
        {
            int n = value.Length;
            Ensure(5 + n);
            if (n <= byte.MaxValue)
            {
                buffer[position++] = 0xc4;
                buffer[position++] = (byte)n;
            }
            else if (n <= ushort.MaxValue)
            {
                buffer[position++] = 0xc5;
                PutBigEndian((ulong)n, 2);
            }
            else
            {
                buffer[position++] = 0xc6;
                PutBigEndian((ulong)n, 4);
            }
            System.Buffer.BlockCopy(value, 0, buffer, position, n);
            position += n;
        }

        public void WriteMapHeader(int count)
        {
            WriteContainerHeader(count, 0x80, 0xde);
        }

        public void WriteArrayHeader(int count)
        {
            WriteContainerHeader(count, 0x90, 0xdc);
        }

        /// <summary>Copies bytes that already hold msgpack (a precomputed key, a queued event).</summary>
        public void WriteRaw(byte[] source, int offset, int count)
        {
            Ensure(count);
            if (count <= 16)
            {
                // Keys and names: a loop beats Buffer.BlockCopy's fixed cost on Mono at this size.
                for (int i = 0; i < count; i++) buffer[position + i] = source[offset + i];
            }
            else
            {
                System.Buffer.BlockCopy(source, offset, buffer, position, count);
            }
            position += count;
        }

        public void WriteRaw(byte[] source)
        {
            WriteRaw(source, 0, source.Length);
        }

        /// <summary>
        /// Writes a random UUID v4 in its 36-char lower-case text form, from 128 random bits, straight into
        /// the buffer: event ids are strings on the wire and this makes one without a string.
        /// </summary>
        public void WriteUuid(ulong high, ulong low)
        {
            high = (high & 0xffffffffffff0fffUL) | 0x0000000000004000UL;   // version 4
            low = (low & 0x3fffffffffffffffUL) | 0x8000000000000000UL;     // RFC 4122 variant
            Ensure(38);
            buffer[position++] = 0xd9;
            buffer[position++] = 36;
            PutHex(high >> 32, 8);
            buffer[position++] = (byte)'-';
            PutHex(high >> 16, 4);
            buffer[position++] = (byte)'-';
            PutHex(high, 4);
            buffer[position++] = (byte)'-';
            PutHex(low >> 48, 4);
            buffer[position++] = (byte)'-';
            PutHex(low, 12);
        }

        /// <summary>
        /// Writes any value a game may put in event fields or purchase metadata: nil, bool, the integer and
        /// float types, string, byte[], dictionaries with string keys, lists and arrays. Boxed values are the
        /// caller's allocations; this path is for the generic calls, not the typed helpers.
        /// </summary>
        public void WriteValue(object value)
        {
            if (value == null) { WriteNil(); return; }
            var text = value as string;
            if (text != null) { WriteString(text); return; }
            switch (Type.GetTypeCode(value.GetType()))
            {
                case TypeCode.Boolean: WriteBool((bool)value); return;
                case TypeCode.SByte: WriteInt((sbyte)value); return;
                case TypeCode.Int16: WriteInt((short)value); return;
                case TypeCode.Int32: WriteInt((int)value); return;
                case TypeCode.Int64: WriteInt((long)value); return;
                case TypeCode.Byte: WriteUInt((byte)value); return;
                case TypeCode.UInt16: WriteUInt((ushort)value); return;
                case TypeCode.UInt32: WriteUInt((uint)value); return;
                case TypeCode.UInt64: WriteUInt((ulong)value); return;
                case TypeCode.Single: WriteSingle((float)value); return;
                case TypeCode.Double: WriteDouble((double)value); return;
            }
            var bytes = value as byte[];
            if (bytes != null) { WriteBinary(bytes); return; }
            var map = value as IDictionary;
            if (map != null)
            {
                WriteMapHeader(map.Count);
                foreach (DictionaryEntry entry in map)
                {
                    WriteString((string)entry.Key);
                    WriteValue(entry.Value);
                }
                return;
            }
            var list = value as IList;
            if (list != null)
            {
                WriteArrayHeader(list.Count);
                for (int i = 0; i < list.Count; i++) WriteValue(list[i]);
                return;
            }
            throw new ArgumentException("cannot encode a value of type " + value.GetType().FullName + " as msgpack");
        }

        /// <summary>UTF-8 byte count of a string; a lone surrogate counts as U+FFFD (3 bytes).</summary>
        public static int Utf8Length(string value)
        {
            int count = 0;
            for (int i = 0; i < value.Length; i++)
            {
                char c = value[i];
                if (c < 0x80) count += 1;
                else if (c < 0x800) count += 2;
                else if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
                {
                    count += 4;
                    i++;
                }
                else count += 3;
            }
            return count;
        }

        private int PartLength(string part)
        {
            return part == null ? 0 : Utf8Length(part) + 1;
        }

        private void PutPart(string part, ref bool first)
        {
            if (part == null) return;
            if (!first) buffer[position++] = (byte)':';
            first = false;
            position = PutUtf8(part, position);
        }

        private int PutUtf8(string value, int at)
        {
            byte[] b = buffer;
            for (int i = 0; i < value.Length; i++)
            {
                int c = value[i];
                if (c < 0x80)
                {
                    b[at++] = (byte)c;
                    continue;
                }
                if (c < 0x800)
                {
                    b[at++] = (byte)(0xc0 | (c >> 6));
                    b[at++] = (byte)(0x80 | (c & 0x3f));
                    continue;
                }
                if (char.IsHighSurrogate((char)c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
                {
                    int cp = char.ConvertToUtf32((char)c, value[i + 1]);
                    i++;
                    b[at++] = (byte)(0xf0 | (cp >> 18));
                    b[at++] = (byte)(0x80 | ((cp >> 12) & 0x3f));
                    b[at++] = (byte)(0x80 | ((cp >> 6) & 0x3f));
                    b[at++] = (byte)(0x80 | (cp & 0x3f));
                    continue;
                }
                if (char.IsSurrogate((char)c)) c = 0xfffd;
                b[at++] = (byte)(0xe0 | (c >> 12));
                b[at++] = (byte)(0x80 | ((c >> 6) & 0x3f));
                b[at++] = (byte)(0x80 | (c & 0x3f));
            }
            return at;
        }

        private void WriteStringHeader(int byteCount)
        {
            Ensure(5);
            if (byteCount < 32)
            {
                buffer[position++] = (byte)(0xa0 | byteCount);
            }
            else if (byteCount <= byte.MaxValue)
            {
                buffer[position++] = 0xd9;
                buffer[position++] = (byte)byteCount;
            }
            else if (byteCount <= ushort.MaxValue)
            {
                buffer[position++] = 0xda;
                PutBigEndian((ulong)byteCount, 2);
            }
            else
            {
                buffer[position++] = 0xdb;
                PutBigEndian((ulong)byteCount, 4);
            }
        }

        private void WriteContainerHeader(int count, byte fixMarker, byte marker16)
        {
            Ensure(5);
            if (count < 16)
            {
                buffer[position++] = (byte)(fixMarker | count);
            }
            else if (count <= ushort.MaxValue)
            {
                buffer[position++] = marker16;
                PutBigEndian((ulong)count, 2);
            }
            else
            {
                buffer[position++] = (byte)(marker16 + 1);
                PutBigEndian((ulong)count, 4);
            }
        }

        private void PutBigEndian(ulong value, int bytes)
        {
            for (int shift = (bytes - 1) * 8; shift >= 0; shift -= 8)
            {
                buffer[position++] = (byte)(value >> shift);
            }
        }

        private void PutHex(ulong value, int digits)
        {
            for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4)
            {
                int nibble = (int)(value >> shift) & 0xf;
                buffer[position++] = (byte)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
            }
        }

        private void Ensure(int extra)
        {
            if (position + extra <= buffer.Length) return;
            int size = Math.Max(buffer.Length * 2, position + extra);
            var grown = new byte[size];
            System.Buffer.BlockCopy(buffer, 0, grown, 0, position);
            buffer = grown;
        }
    }

    /// <summary>The bits of a float 32 without allocating (BitConverter.SingleToInt32Bits is not in Unity's .NET 4.x profile).</summary>
    [StructLayout(LayoutKind.Explicit)]
    internal struct Float32Bits
    {
        [FieldOffset(0)] public float Value;
        [FieldOffset(0)] public uint Bits;
    }
}
