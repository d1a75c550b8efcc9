using System;
using System.IO;
using System.Text;

namespace EngineBridge.Internal
{
    /// <summary>A game's id and its default endpoints, as the daemon derives them (protocol.md section 1).</summary>
    internal static class GameEndpoints
    {
        public static bool Valid(string game)
        {
            if (game.Length < 1 || game.Length > 32) return false;
            for (int i = 0; i < game.Length; i++)
            {
                char c = game[i];
                bool plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
                if (!plain && (i == 0 || (c != '_' && c != '-'))) return false;
            }
            return true;
        }

        /// <summary>{ ingress, configs } for a game (null: the classic loopback pair).</summary>
        public static string[] Defaults(string game)
        {
            if (game == null) return new[] { "tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556" };
            var platform = Environment.OSVersion.Platform;
            if (platform != PlatformID.Unix && platform != PlatformID.MacOSX)
            {
                uint port = 40000 + 2 * (Fnv1a(game) % 4500);
                return new[] { "tcp://127.0.0.1:" + port, "tcp://127.0.0.1:" + (port + 1) };
            }
            string folder = "ipc://" + Path.Combine(Path.Combine(RuntimeDirectory(), "engine-bridge"), game) + "/";
            return new[] { folder + "ingress", folder + "configs" };
        }

        private static uint Fnv1a(string text)
        {
            uint hash = 0x811c9dc5;
            foreach (byte b in Encoding.UTF8.GetBytes(text)) hash = unchecked((hash ^ b) * 0x01000193);
            return hash;
        }

        /// <summary>$XDG_RUNTIME_DIR, else the temporary directory (macOS: the user's own), else /tmp/engine-bridge-UID.</summary>
        private static string RuntimeDirectory()
        {
            string xdg = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
            if (!string.IsNullOrEmpty(xdg)) return xdg;
            string temp = null;
            foreach (string name in new[] { "TMPDIR", "TEMP", "TMP" })
            {
                if (string.IsNullOrEmpty(temp)) temp = Environment.GetEnvironmentVariable(name);
            }
            if (string.IsNullOrEmpty(temp)) temp = "/tmp";
            temp = temp.Length > 1 ? temp.TrimEnd('/') : temp;
            if (Directory.Exists("/System/Library")) return temp;   // macOS: TMPDIR is the user's own
            return temp + "/engine-bridge-" + UserId();
        }

        private static string UserId()
        {
            // /proc/self/status names the real uid on Linux, without native calls.
            foreach (string line in File.ReadAllLines("/proc/self/status"))
            {
                if (line.StartsWith("Uid:", StringComparison.Ordinal)) return line.Substring(4).Trim().Split('\t', ' ')[0];
            }
            return "0";
        }
    }
}
