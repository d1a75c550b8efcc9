using System;
using System.Collections.Generic;
using System.Text;

namespace EngineBridge.Internal
{
    /// <summary>
    /// Decodes one msgpack value into plain objects: null, bool, long (ulong above long.MaxValue), double,
    /// string, byte[], object[] and Dictionary&lt;string, object&gt;. Used for the daemon's replies and
    /// publications, on the I/O threads only.
    /// </summary>
    internal struct MsgPackReader
    {
        private readonly byte[] data;
        private readonly int end;
        private int position;

        private MsgPackReader(byte[] data, int offset, int count)
        {
            this.data = data;
            position = offset;
            end = offset + count;
        }

        /// <summary>The single value held by data[offset .. offset+count); FormatException if it is not exactly one.</summary>
        public static object Decode(byte[] data, int offset, int count)
        {
            var reader = new MsgPackReader(data, offset, count);
            object value = reader.ReadValue(0);
            if (reader.position != reader.end) throw new FormatException("trailing bytes after the msgpack value");
            return value;
        }

        /// <summary>Like <see cref="Decode"/>, for frames that must hold a map (every reply does).</summary>
        public static Dictionary<string, object> DecodeMap(byte[] data, int offset, int count)
        {
            var map = Decode(data, offset, count) as Dictionary<string, object>;
            if (map == null) throw new FormatException("the frame is not a msgpack map");
            return map;
        }

        private const int MaxDepth = 64;

        private object ReadValue(int depth)
        {
            if (depth > MaxDepth) throw new FormatException("msgpack nested too deeply");
            Take(1);
            byte marker = data[position - 1];
            if (marker <= 0x7f) return (long)marker;
            if (marker >= 0xe0) return (long)(sbyte)marker;
            if (marker >= 0x80 && marker <= 0x8f) return ReadMap(marker & 0x0f, depth);
            if (marker >= 0x90 && marker <= 0x9f) return ReadArray(marker & 0x0f, depth);
            if (marker >= 0xa0 && marker <= 0xbf) return ReadString(marker & 0x1f);
            switch (marker)
            {
                case 0xc0: return null;
                case 0xc2: return false;
                case 0xc3: return true;
                case 0xc4: return ReadBinary((int)ReadBigEndian(1));
                case 0xc5: return ReadBinary((int)ReadBigEndian(2));
                case 0xc6: return ReadBinary(CheckedLength(ReadBigEndian(4)));
                case 0xca: return (double)new Float32Bits { Bits = (uint)ReadBigEndian(4) }.Value;
                case 0xcb: return BitConverter.Int64BitsToDouble((long)ReadBigEndian(8));
                case 0xcc: return (long)ReadBigEndian(1);
                case 0xcd: return (long)ReadBigEndian(2);
                case 0xce: return (long)ReadBigEndian(4);
                case 0xcf:
                    {
                        ulong value = ReadBigEndian(8);
                        if (value > long.MaxValue) return value;
                        return (long)value;
                    }
                case 0xd0: return (long)(sbyte)ReadBigEndian(1);
                case 0xd1: return (long)(short)ReadBigEndian(2);
                case 0xd2: return (long)(int)ReadBigEndian(4);
                case 0xd3: return (long)ReadBigEndian(8);
                case 0xd9: return ReadString((int)ReadBigEndian(1));
                case 0xda: return ReadString((int)ReadBigEndian(2));
                case 0xdb: return ReadString(CheckedLength(ReadBigEndian(4)));
                case 0xdc: return ReadArray((int)ReadBigEndian(2), depth);
                case 0xdd: return ReadArray(CheckedLength(ReadBigEndian(4)), depth);
                case 0xde: return ReadMap((int)ReadBigEndian(2), depth);
                case 0xdf: return ReadMap(CheckedLength(ReadBigEndian(4)), depth);
            }
            throw new FormatException("unsupported msgpack marker 0x" + marker.ToString("x2"));
        }

        private Dictionary<string, object> ReadMap(int count, int depth)
        {
            var map = new Dictionary<string, object>(Math.Min(count, 64));
            for (int i = 0; i < count; i++)
            {
                var key = ReadValue(depth + 1) as string;
                if (key == null) throw new FormatException("msgpack map key is not a string");
                map[key] = ReadValue(depth + 1);
            }
            return map;
        }

        private object[] ReadArray(int count, int depth)
        {
            if (count > end - position) throw new FormatException("msgpack array longer than its frame");
            var items = new object[count];
            for (int i = 0; i < count; i++) items[i] = ReadValue(depth + 1);
            return items;
        }

        private string ReadString(int length)
        {
            Take(length);
            return Encoding.UTF8.GetString(data, position - length, length);
        }

        private byte[] ReadBinary(int length)
        {
            Take(length);
            var bytes = new byte[length];
            Buffer.BlockCopy(data, position - length, bytes, 0, length);
            return bytes;
        }

        private ulong ReadBigEndian(int bytes)
        {
            Take(bytes);
            ulong value = 0;
            for (int i = position - bytes; i < position; i++) value = (value << 8) | data[i];
            return value;
        }

        private static int CheckedLength(ulong length)
        {
            if (length > int.MaxValue) throw new FormatException("msgpack length out of range");
            return (int)length;
        }

        /// <summary>Consumes <paramref name="count"/> bytes, which then end at <c>position</c>.</summary>
        private void Take(int count)
        {
            if (count < 0 || count > end - position) throw new FormatException("msgpack value cut short");
            position += count;
        }
    }
}
