// The daemon as a child process of the game: started when none answers, tied to the game by a pipe to its
// standard input, stopped with the game. Internal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "engine_bridge/engine_bridge.hpp"

namespace engine_bridge::detail {

/// Whether this platform can launch the daemon (POSIX and Windows).
bool CanLaunchDaemon() noexcept;

/// The folder of the running game's executable ("" if unknown): a relative Settings::daemon.executable is
/// found from there, wherever the game was started from.
std::string ExecutableDirectory();

/// `path` as it is when absolute, else joined to `base`.
std::string ResolveFrom(const std::string& base, const std::string& path);

class DaemonProcess {
 public:
  DaemonProcess() = default;
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;
  ~DaemonProcess() { Stop(std::chrono::milliseconds(0)); }

  /// Starts `argv` with its stdout/stderr appended to `log_path` (inherited when empty) and its standard input
  /// the read end of a pipe whose write end only this process holds: when the game ends, however it ends, the
  /// OS closes it and a daemon run with --parent-pipe stops. The error says why the program could not be
  /// executed at all (a missing or non-executable file). `by_pipe`: the daemon watches that pipe
  /// (--parent-pipe); otherwise, on Linux, it also gets SIGTERM when the game dies (PR_SET_PDEATHSIG).
  Status Start(const std::vector<std::string>& argv, const std::string& log_path, bool by_pipe);
  /// True while the child runs; reaps it once it has exited.
  bool Running();
  /// Closes the pipe (the daemon stops cleanly at its end), waits up to `timeout`, then kills it; waits for
  /// the child to be gone.
  void Stop(std::chrono::milliseconds timeout);
  std::int64_t pid() const noexcept { return pid_; }

 private:
  void Release();

  std::int64_t pid_ = 0;
#if defined(_WIN32)
  void* process_ = nullptr;  // HANDLE
  void* pipe_ = nullptr;     // HANDLE: the write end of the child's standard input
#else
  int pipe_ = -1;  // the write end of the child's standard input
#endif
};

}  // namespace engine_bridge::detail
