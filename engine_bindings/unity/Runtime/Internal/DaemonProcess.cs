using System;
using System.Diagnostics;
using System.IO;
using System.Text;

namespace EngineBridge.Internal
{
    /// <summary>
    /// The daemon as a child process of the game (<see cref="DaemonLaunchSettings"/>). The ingress thread calls
    /// <see cref="MaybeLaunch"/> while it has no connection: once no daemon has answered for ProbeMs, the command
    /// is started; if that daemon dies before answering, it is started again later, less and less often (up to
    /// every 30 s). <see cref="Stop"/> ends it with the game, and so does the process exiting.
    /// </summary>
    internal sealed class DaemonProcess
    {
        private const int MaxBackoffMs = 30000;

        private readonly string[] command;
        private readonly int probeMs;
        private readonly string logPath;
        private readonly int stopTimeoutMs;
        private readonly object gate = new object();
        private Process process;
        private StreamWriter log;
        private long nextLaunchMs;
        private long backoffMs;
        private long pid;
        private bool stopped;
        private volatile string lastFailure;

        /// <summary>Copies the settings: changing them later has no effect.</summary>
        public DaemonProcess(DaemonLaunchSettings settings, string[] commandLine)
        {
            command = (string[])commandLine.Clone();
            probeMs = settings.ProbeMs;
            logPath = settings.LogPath;
            stopTimeoutMs = settings.StopTimeoutMs;
            backoffMs = probeMs;
            nextLaunchMs = Clock.Milliseconds + probeMs;
        }

        /// <summary>The process id of the daemon last launched, 0 if none was.</summary>
        public long Pid { get { lock (gate) return pid; } }

        /// <summary>Why the last launch failed, or null.</summary>
        public string LastFailure { get { return lastFailure; } }

        /// <summary>The ingress thread reached a daemon: a later outage waits ProbeMs again before launching.</summary>
        public void OnConnected()
        {
            backoffMs = probeMs;
            nextLaunchMs = Clock.Milliseconds + probeMs;
        }

        /// <summary>
        /// Starts the daemon if it is time to and ours is not already running; called on the ingress thread.
        /// True when it started one, which will listen shortly.
        /// </summary>
        public bool MaybeLaunch()
        {
            long now = Clock.Milliseconds;
            if (now < nextLaunchMs) return false;
            nextLaunchMs = now + backoffMs;
            backoffMs = Math.Min(backoffMs * 2, MaxBackoffMs);
            bool started = false;
            lock (gate)
            {
                if (stopped || (process != null && !process.HasExited)) return false;
                Release();
                try
                {
                    process = Start();
                    pid = process.Id;
                    lastFailure = null;
                    started = true;
                }
                catch (Exception e)
                {
                    process = null;
                    lastFailure = "daemon launch: " + command[0] + ": " + e.Message;
                }
            }
            AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
            AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
            return started;
        }

        /// <summary>The command line, for messages.</summary>
        public string Command { get { return string.Join(" ", command); } }

        /// <summary>
        /// Stops the launched daemon: SIGTERM on Unix-like systems (elsewhere a kill), up to StopTimeoutMs for a
        /// clean exit, then a kill. Blocks that long at most; meant for quitting. No launch happens afterwards.
        /// </summary>
        public void Stop()
        {
            lock (gate)
            {
                if (stopped) return;
                stopped = true;
                try
                {
                    if (process != null && !process.HasExited)
                    {
                        process.StandardInput.Close();   // end of file: a daemon run with --parent-pipe stops cleanly
                        if (!process.WaitForExit(stopTimeoutMs)) RequestExit(process);
                        if (!process.WaitForExit(stopTimeoutMs)) process.Kill();
                        process.WaitForExit(stopTimeoutMs);
                    }
                }
                catch (InvalidOperationException)
                {
                    // It exited on its own meanwhile.
                }
                Release();
            }
            AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        }

        private Process Start()
        {
            var info = new ProcessStartInfo(command[0], JoinArguments(command))
            {
                UseShellExecute = false,
                CreateNoWindow = true,
                // The game holds the write end: when it ends, however it ends, the daemon reads end of file.
                RedirectStandardInput = true,
            };
            if (logPath == null)
            {
                return Process.Start(info);
            }
            // The pipes are drained into the log file: a daemon blocked on a full pipe would stop answering.
            info.RedirectStandardOutput = true;
            info.RedirectStandardError = true;
            var writer = new StreamWriter(logPath, true, new UTF8Encoding(false)) { AutoFlush = true };
            var started = new Process { StartInfo = info };
            DataReceivedEventHandler append = delegate(object sender, DataReceivedEventArgs e)
            {
                if (e.Data == null) return;
                lock (writer) writer.WriteLine(e.Data);
            };
            started.OutputDataReceived += append;
            started.ErrorDataReceived += append;
            try
            {
                started.Start();
            }
            catch
            {
                writer.Dispose();
                started.Dispose();
                throw;
            }
            started.BeginOutputReadLine();
            started.BeginErrorReadLine();
            log = writer;
            return started;
        }

        private void Release()
        {
            if (process != null)
            {
                process.Dispose();
                process = null;
            }
            if (log != null)
            {
                lock (log) log.Dispose();
                log = null;
            }
        }

        /// <summary>SIGTERM through <c>kill</c> (no native code needed) where there are signals; elsewhere a kill.</summary>
        private void RequestExit(Process target)
        {
            var platform = Environment.OSVersion.Platform;
            if (platform != PlatformID.Unix && platform != PlatformID.MacOSX)
            {
                target.Kill();
                return;
            }
            var info = new ProcessStartInfo("kill", "-TERM " + target.Id) { UseShellExecute = false, CreateNoWindow = true };
            using (var kill = Process.Start(info))
            {
                kill.WaitForExit(stopTimeoutMs);
            }
        }

        private void OnProcessExit(object sender, EventArgs e)
        {
            Stop();
        }

        /// <summary>The arguments after the program as one command line, quoted the way Windows and Mono both split it.</summary>
        private static string JoinArguments(string[] command)
        {
            var line = new StringBuilder();
            for (int n = 1; n < command.Length; n++)
            {
                string argument = command[n];
                if (line.Length > 0) line.Append(' ');
                if (argument.Length > 0 && argument.IndexOfAny(QuotedChars) < 0)
                {
                    line.Append(argument);
                    continue;
                }
                // Backslashes are literal except before a quote, where they are doubled and the quote escaped.
                line.Append('"');
                int backslashes = 0;
                foreach (char c in argument)
                {
                    if (c == '\\')
                    {
                        backslashes++;
                        continue;
                    }
                    line.Append('\\', c == '"' ? backslashes * 2 + 1 : backslashes);
                    backslashes = 0;
                    line.Append(c);
                }
                line.Append('\\', backslashes * 2);
                line.Append('"');
            }
            return line.ToString();
        }

        private static readonly char[] QuotedChars = { ' ', '\t', '"', '\'' };
    }
}
