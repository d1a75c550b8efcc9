// The daemon as a child process of the game: started when none answers, stopped with the game. Internal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "engine_bridge/engine_bridge.hpp"

namespace engine_bridge::detail {

/// Whether this platform can launch the daemon (POSIX today).
bool CanLaunchDaemon() noexcept;

class DaemonProcess {
 public:
  DaemonProcess() = default;
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;
  ~DaemonProcess() { Stop(std::chrono::milliseconds(0)); }

  /// Starts `argv` with its stdout/stderr appended to `log_path` (inherited when empty). The error says
  /// why when the program could not be executed at all.
  Status Start(const std::vector<std::string>& argv, const std::string& log_path);
  /// True while the child runs; reaps it once it has exited.
  bool Running();
  /// SIGTERM, then SIGKILL after `timeout`; waits for the child to be gone.
  void Stop(std::chrono::milliseconds timeout);
  std::int64_t pid() const noexcept { return pid_; }

 private:
  std::int64_t pid_ = 0;
};

}  // namespace engine_bridge::detail
