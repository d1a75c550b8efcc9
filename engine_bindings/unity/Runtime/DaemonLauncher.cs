using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Text;
using EngineBridge.Internal;

namespace EngineBridge
{
    /// <summary>How <see cref="DaemonLauncher"/> starts the daemon: <c>Executable [ExecutableArguments] run --ingress ...</c>.</summary>
    public sealed class DaemonLaunchSettings
    {
        public DaemonLaunchSettings()
        {
            Executable = "engine-bridge";
            IngressEndpoint = "tcp://127.0.0.1:5555";
            ConfigsEndpoint = "tcp://127.0.0.1:5556";
            StopTimeoutMs = 3000;
        }

        /// <summary>The program to run: <c>engine-bridge</c> on the PATH, or a full path (e.g. a Python interpreter).</summary>
        public string Executable { get; set; }

        /// <summary>Arguments before <c>run</c>, e.g. <c>-m bridge</c> when Executable is a Python interpreter.</summary>
        public string[] ExecutableArguments { get; set; }

        /// <summary>Passed as <c>--ingress</c>; also where the launcher looks for a daemon already running.</summary>
        public string IngressEndpoint { get; set; }

        /// <summary>Passed as <c>--publish</c>.</summary>
        public string ConfigsEndpoint { get; set; }

        /// <summary>Optional <c>--data-dir</c>: where the daemon keeps its store.</summary>
        public string DataDirectory { get; set; }

        /// <summary>Optional <c>--config</c>: the daemon's TOML file.</summary>
        public string ConfigFile { get; set; }

        public string WorkingDirectory { get; set; }

        /// <summary>Variables added to the daemon's environment.</summary>
        public IDictionary<string, string> Environment { get; set; }

        /// <summary>Receives each line the daemon prints (from a process thread); its output is discarded when null.</summary>
        public Action<string> Log { get; set; }

        /// <summary>How long <see cref="DaemonLauncher.Stop"/> waits for a clean exit before killing the process.</summary>
        public int StopTimeoutMs { get; set; }
    }

    /// <summary>
    /// Starts the daemon as a child process of the game when none answers on the ingress endpoint, and stops it
    /// with the game (<see cref="Stop"/>, <see cref="Dispose"/>, or at process exit). A daemon that was already
    /// running is left alone. Call it once at start-up, before creating the <see cref="BridgeClient"/>; the
    /// client connects as soon as the daemon is ready. It costs a loopback connection attempt and a process start.
    /// </summary>
    public sealed class DaemonLauncher : IDisposable
    {
        private const int ProbeTimeoutMs = 300;

        private readonly Process process;
        private readonly int stopTimeoutMs;
        private readonly object gate = new object();
        private bool stopped;

        private DaemonLauncher(Process process, int stopTimeoutMs)
        {
            this.process = process;
            this.stopTimeoutMs = stopTimeoutMs;
            if (process != null) AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
        }

        /// <summary>
        /// Returns at once if a daemon answers on <c>settings.IngressEndpoint</c> (<see cref="Launched"/> is then
        /// false); otherwise starts one. Throws ArgumentException for bad settings and Win32Exception when the
        /// executable cannot be started.
        /// </summary>
        public static DaemonLauncher EnsureRunning(DaemonLaunchSettings settings)
        {
            Check.NotNull(settings, "settings");
            Check.Text(settings.Executable, "Executable", 1, 4096);
            var ingress = ZmtpEndpoint.Parse(settings.IngressEndpoint, "IngressEndpoint");
            ZmtpEndpoint.Parse(settings.ConfigsEndpoint, "ConfigsEndpoint");
            if (settings.StopTimeoutMs < 0) throw new ArgumentOutOfRangeException("StopTimeoutMs", settings.StopTimeoutMs, "StopTimeoutMs cannot be negative");
            if (IsRunning(ingress)) return new DaemonLauncher(null, settings.StopTimeoutMs);
            return new DaemonLauncher(Start(settings), settings.StopTimeoutMs);
        }

        /// <summary>True when something completes a ZMTP handshake on the endpoint within 300 ms.</summary>
        public static bool IsRunning(string ingressEndpoint)
        {
            return IsRunning(ZmtpEndpoint.Parse(ingressEndpoint, "ingressEndpoint"));
        }

        /// <summary>True when this launcher started the daemon, and so will stop it.</summary>
        public bool Launched { get { return process != null; } }

        /// <summary>The launched daemon's process id, or -1.</summary>
        public int ProcessId { get { return process != null ? process.Id : -1; } }

        /// <summary>True once the launched daemon has exited or was stopped (false when none was launched).</summary>
        public bool HasExited
        {
            get
            {
                if (process == null) return false;
                lock (gate) return stopped || process.HasExited;
            }
        }

        /// <summary>
        /// Stops the daemon this launcher started: a clean stop (SIGTERM on Unix-like systems) and up to
        /// StopTimeoutMs for it to finish, then a kill. Blocks that long at most; meant for quitting.
        /// Does nothing when the daemon was already running before.
        /// </summary>
        public void Stop()
        {
            lock (gate)
            {
                if (stopped || process == null) return;
                stopped = true;
            }
            AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
            try
            {
                if (!process.HasExited)
                {
                    RequestExit();
                    if (!process.WaitForExit(stopTimeoutMs)) process.Kill();
                    process.WaitForExit(stopTimeoutMs);
                }
            }
            catch (InvalidOperationException)
            {
                // The process is already gone.
            }
            finally
            {
                process.Dispose();
            }
        }

        public void Dispose()
        {
            Stop();
        }

        private static bool IsRunning(ZmtpEndpoint ingress)
        {
            try
            {
                ZmtpConnection.Open(ingress, "DEALER", ProbeTimeoutMs).Dispose();
                return true;
            }
            catch (Exception)
            {
                return false;
            }
        }

        private static Process Start(DaemonLaunchSettings settings)
        {
            var arguments = new List<string>();
            if (settings.ExecutableArguments != null) arguments.AddRange(settings.ExecutableArguments);
            arguments.Add("run");
            arguments.Add("--ingress");
            arguments.Add(settings.IngressEndpoint);
            arguments.Add("--publish");
            arguments.Add(settings.ConfigsEndpoint);
            if (settings.DataDirectory != null)
            {
                arguments.Add("--data-dir");
                arguments.Add(settings.DataDirectory);
            }
            if (settings.ConfigFile != null)
            {
                arguments.Add("--config");
                arguments.Add(settings.ConfigFile);
            }
            var info = new ProcessStartInfo(settings.Executable, JoinArguments(arguments))
            {
                UseShellExecute = false,
                CreateNoWindow = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = false,
            };
            if (settings.WorkingDirectory != null) info.WorkingDirectory = settings.WorkingDirectory;
            if (settings.Environment != null)
            {
                foreach (var entry in settings.Environment) info.EnvironmentVariables[entry.Key] = entry.Value;
            }
            var process = new Process { StartInfo = info };
            Action<string> log = settings.Log;
            // The pipes are always drained: a daemon blocked on a full pipe would stop answering.
            process.OutputDataReceived += delegate(object sender, DataReceivedEventArgs e) { if (log != null && e.Data != null) log(e.Data); };
            process.ErrorDataReceived += delegate(object sender, DataReceivedEventArgs e) { if (log != null && e.Data != null) log(e.Data); };
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return process;
        }

        /// <summary>SIGTERM where there are signals (through <c>kill</c>, which needs no native code); elsewhere a kill.</summary>
        private void RequestExit()
        {
            var platform = System.Environment.OSVersion.Platform;
            if (platform != PlatformID.Unix && platform != PlatformID.MacOSX)
            {
                process.Kill();
                return;
            }
            var info = new ProcessStartInfo("kill", "-TERM " + process.Id) { UseShellExecute = false, CreateNoWindow = true };
            using (var kill = Process.Start(info))
            {
                kill.WaitForExit(stopTimeoutMs);
            }
        }

        private void OnProcessExit(object sender, EventArgs e)
        {
            Stop();
        }

        /// <summary>One command line from separate arguments, quoted the way both Windows and Mono split it.</summary>
        private static string JoinArguments(List<string> arguments)
        {
            var line = new StringBuilder();
            foreach (string argument in arguments)
            {
                if (line.Length > 0) line.Append(' ');
                if (argument.Length > 0 && argument.IndexOfAny(new[] { ' ', '\t', '"', '\'' }) < 0)
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
    }
}
