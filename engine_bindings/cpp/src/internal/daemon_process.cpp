#include "daemon_process.hpp"

#include <cerrno>
#include <cstring>
#include <thread>

#if !defined(_WIN32)
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif
#endif

namespace engine_bridge::detail {

#if defined(_WIN32)

bool CanLaunchDaemon() noexcept { return false; }
Status DaemonProcess::Start(const std::vector<std::string>&, const std::string&) {
  return Status(ErrorCode::InvalidArgument, "launching the daemon is not supported on Windows yet");
}
bool DaemonProcess::Running() { return false; }
void DaemonProcess::Stop(std::chrono::milliseconds) {}

#else

bool CanLaunchDaemon() noexcept { return true; }

Status DaemonProcess::Start(const std::vector<std::string>& argv, const std::string& log_path) {
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return Status(ErrorCode::Internal, "cannot open " + log_path + ": " + std::strerror(errno));
  }
  // The child reports a failed exec through this pipe; a successful exec closes it (O_CLOEXEC).
  int report[2];
  if (::pipe(report) != 0 || ::fcntl(report[0], F_SETFD, FD_CLOEXEC) != 0 ||
      ::fcntl(report[1], F_SETFD, FD_CLOEXEC) != 0) {
    if (log_fd >= 0) ::close(log_fd);
    return Status(ErrorCode::Internal, std::string("pipe: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
#if defined(__linux__)
    // If the game dies without stopping us (a crash), the kernel sends SIGTERM.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(0);
#endif
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    ::execvp(args[0], args.data());
    int err = errno;
    ssize_t ignored = ::write(report[1], &err, sizeof err);
    (void)ignored;
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(report[1]);
  if (log_fd >= 0) ::close(log_fd);
  if (pid < 0) {
    ::close(report[0]);
    return Status(ErrorCode::Internal, std::string("fork: ") + std::strerror(fork_errno));
  }
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    ::waitpid(pid, nullptr, 0);
    return Status(ErrorCode::Internal, "cannot run " + argv[0] + ": " + std::strerror(child_errno));
  }
  pid_ = pid;
  return Status();
}

bool DaemonProcess::Running() {
  if (pid_ == 0) return false;
  if (::waitpid(static_cast<pid_t>(pid_), nullptr, WNOHANG) == 0) return true;
  pid_ = 0;
  return false;
}

void DaemonProcess::Stop(std::chrono::milliseconds timeout) {
  if (!Running()) return;
  const pid_t pid = static_cast<pid_t>(pid_);
  ::kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, nullptr, WNOHANG) != 0) {
      pid_ = 0;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  pid_ = 0;
}

#endif

}  // namespace engine_bridge::detail
