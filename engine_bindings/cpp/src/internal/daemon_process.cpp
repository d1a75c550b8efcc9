#include "daemon_process.hpp"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#if defined(_WIN32)
// Built and tested on Linux only here: this branch follows the Win32 documentation (CreateProcessW, pipes,
// handle inheritance limited to the child's three standard handles) and is compiled on Windows builds alone.
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#else
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif
#if defined(__APPLE__)
#include <mach-o/dyld.h>
#endif
#endif

namespace engine_bridge::detail {

std::string ResolveFrom(const std::string& base, const std::string& path) {
#if defined(_WIN32)
  const bool absolute = (path.size() > 1 && path[1] == ':') || (!path.empty() && (path[0] == '\\' || path[0] == '/'));
  const char separator = '\\';
#else
  const bool absolute = !path.empty() && path[0] == '/';
  const char separator = '/';
#endif
  if (absolute || base.empty()) return path;
  return base + separator + path;
}

#if defined(_WIN32)

namespace {

std::wstring Widen(const std::string& text) {
  if (text.empty()) return std::wstring();
  const int n = MultiByteToWideChar(CP_UTF8, 0, text.data(), static_cast<int>(text.size()), nullptr, 0);
  std::wstring out(static_cast<std::size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, text.data(), static_cast<int>(text.size()), out.data(), n);
  return out;
}

std::string Narrow(const std::wstring& text) {
  if (text.empty()) return std::string();
  const int n = WideCharToMultiByte(CP_UTF8, 0, text.data(), static_cast<int>(text.size()), nullptr, 0, nullptr, nullptr);
  std::string out(static_cast<std::size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, text.data(), static_cast<int>(text.size()), out.data(), n, nullptr, nullptr);
  return out;
}

// One argument quoted as CommandLineToArgvW and the C runtime split it: backslashes are literal except before
// a quote, where they are doubled and the quote escaped.
void AppendQuoted(std::wstring& line, const std::wstring& arg) {
  if (!line.empty()) line += L' ';
  if (!arg.empty() && arg.find_first_of(L" \t\"") == std::wstring::npos) {
    line += arg;
    return;
  }
  line += L'"';
  std::size_t backslashes = 0;
  for (wchar_t c : arg) {
    if (c == L'\\') {
      ++backslashes;
      continue;
    }
    line.append(c == L'"' ? backslashes * 2 + 1 : backslashes, L'\\');
    backslashes = 0;
    line += c;
  }
  line.append(backslashes * 2, L'\\');
  line += L'"';
}

std::string LastError(const char* what) {
  return std::string(what) + ": Windows error " + std::to_string(GetLastError());
}

}  // namespace

bool CanLaunchDaemon() noexcept { return true; }

std::string ExecutableDirectory() {
  std::wstring path(32768, L'\0');
  const DWORD n = GetModuleFileNameW(nullptr, path.data(), static_cast<DWORD>(path.size()));
  if (n == 0 || n >= path.size()) return std::string();
  path.resize(n);
  const std::size_t slash = path.find_last_of(L"\\/");
  return slash == std::wstring::npos ? std::string() : Narrow(path.substr(0, slash));
}

Status DaemonProcess::Start(const std::vector<std::string>& argv, const std::string& log_path, bool by_pipe) {
  (void)by_pipe;  // Windows has no death signal: a command of the game's own passes --parent-pipe itself
  Release();
  SECURITY_ATTRIBUTES inherit{sizeof(SECURITY_ATTRIBUTES), nullptr, TRUE};
  HANDLE read_end = nullptr, write_end = nullptr;
  if (!CreatePipe(&read_end, &write_end, &inherit, 0)) return Status(ErrorCode::Internal, LastError("CreatePipe"));
  SetHandleInformation(write_end, HANDLE_FLAG_INHERIT, 0);  // the game's end stays the game's alone
  HANDLE log = INVALID_HANDLE_VALUE;
  if (!log_path.empty()) {
    log = CreateFileW(Widen(log_path).c_str(), FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit,
                      OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (log == INVALID_HANDLE_VALUE) {
      CloseHandle(read_end);
      CloseHandle(write_end);
      return Status(ErrorCode::Internal, "cannot open " + log_path + ": " + LastError("CreateFileW"));
    }
  }
  STARTUPINFOEXW info{};
  info.StartupInfo.cb = sizeof info;
  info.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  info.StartupInfo.hStdInput = read_end;
  info.StartupInfo.hStdOutput = log != INVALID_HANDLE_VALUE ? log : GetStdHandle(STD_OUTPUT_HANDLE);
  info.StartupInfo.hStdError = log != INVALID_HANDLE_VALUE ? log : GetStdHandle(STD_ERROR_HANDLE);
  // Only these handles are inherited, not every inheritable handle the game holds.
  HANDLE handles[3] = {read_end, info.StartupInfo.hStdOutput, info.StartupInfo.hStdError};
  const DWORD count = log != INVALID_HANDLE_VALUE ? 2 : 1;
  SIZE_T size = 0;
  InitializeProcThreadAttributeList(nullptr, 1, 0, &size);
  std::vector<unsigned char> attributes(size);
  info.lpAttributeList = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(attributes.data());
  const bool listed = InitializeProcThreadAttributeList(info.lpAttributeList, 1, 0, &size) &&
                      UpdateProcThreadAttribute(info.lpAttributeList, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, handles,
                                                count * sizeof(HANDLE), nullptr, nullptr);
  std::wstring line;
  for (const std::string& a : argv) AppendQuoted(line, Widen(a));
  PROCESS_INFORMATION child{};
  const BOOL created = listed && CreateProcessW(Widen(argv[0]).c_str(), line.data(), nullptr, nullptr, TRUE,
                                                CREATE_NO_WINDOW | EXTENDED_STARTUPINFO_PRESENT, nullptr, nullptr,
                                                &info.StartupInfo, &child);
  const std::string failure = created ? std::string() : LastError("CreateProcessW");
  if (listed) DeleteProcThreadAttributeList(info.lpAttributeList);
  CloseHandle(read_end);
  if (log != INVALID_HANDLE_VALUE) CloseHandle(log);
  if (!created) {
    CloseHandle(write_end);
    return Status(ErrorCode::Internal, "cannot run " + argv[0] + ": " + failure);
  }
  CloseHandle(child.hThread);
  process_ = child.hProcess;
  pipe_ = write_end;
  pid_ = static_cast<std::int64_t>(child.dwProcessId);
  return Status();
}

bool DaemonProcess::Running() {
  if (process_ == nullptr) return false;
  if (WaitForSingleObject(process_, 0) == WAIT_TIMEOUT) return true;
  Release();
  return false;
}

void DaemonProcess::Stop(std::chrono::milliseconds timeout) {
  if (!Running()) return;
  CloseHandle(pipe_);  // end of file: the daemon stops cleanly
  pipe_ = nullptr;
  if (WaitForSingleObject(process_, static_cast<DWORD>(timeout.count())) == WAIT_TIMEOUT) {
    TerminateProcess(process_, 70);
    WaitForSingleObject(process_, INFINITE);
  }
  Release();
}

void DaemonProcess::Release() {
  if (pipe_ != nullptr) CloseHandle(pipe_);
  if (process_ != nullptr) CloseHandle(process_);
  pipe_ = process_ = nullptr;
  pid_ = 0;
}

#else

bool CanLaunchDaemon() noexcept { return true; }

std::string ExecutableDirectory() {
  std::string path;
#if defined(__APPLE__)
  std::uint32_t size = 0;
  _NSGetExecutablePath(nullptr, &size);
  std::string buffer(size, '\0');
  if (_NSGetExecutablePath(buffer.data(), &size) != 0) return std::string();
  char real[PATH_MAX];
  if (::realpath(buffer.c_str(), real) == nullptr) return std::string();
  path = real;
#else
  char buffer[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n <= 0) return std::string();
  path.assign(buffer, static_cast<std::size_t>(n));
#endif
  const std::size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

Status DaemonProcess::Start(const std::vector<std::string>& argv, const std::string& log_path, bool by_pipe) {
  (void)by_pipe;  // used on Linux only
  Release();
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return Status(ErrorCode::Internal, "cannot open " + log_path + ": " + std::strerror(errno));
  }
  // `report`: the child tells a failed exec through it; a successful exec closes it (O_CLOEXEC). `life`: the
  // child's standard input, whose write end (close-on-exec, so no other child inherits it) the game keeps.
  int report[2], life[2];
  if (::pipe(report) != 0 || ::pipe(life) != 0) {
    if (log_fd >= 0) ::close(log_fd);
    return Status(ErrorCode::Internal, std::string("pipe: ") + std::strerror(errno));
  }
  for (int fd : {report[0], report[1], life[0], life[1]}) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
#if defined(__linux__)
    if (!by_pipe) {
      // A command of the game's own may not watch its standard input (--parent-pipe): if the game dies without
      // stopping it (a crash, kill -9), the kernel sends it SIGTERM, a clean stop, instead of orphaning it.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(0);  // the game died before that took effect
    }
#endif
    ::dup2(life[0], STDIN_FILENO);  // dup2's copy is not close-on-exec
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
  ::close(life[0]);
  if (log_fd >= 0) ::close(log_fd);
  if (pid < 0) {
    ::close(report[0]);
    ::close(life[1]);
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
    ::close(life[1]);
    return Status(ErrorCode::Internal, "cannot run " + argv[0] + ": " + std::strerror(child_errno));
  }
  pid_ = pid;
  pipe_ = life[1];
  return Status();
}

bool DaemonProcess::Running() {
  if (pid_ == 0) return false;
  if (::waitpid(static_cast<pid_t>(pid_), nullptr, WNOHANG) == 0) return true;
  Release();
  return false;
}

void DaemonProcess::Stop(std::chrono::milliseconds timeout) {
  if (!Running()) return;
  const pid_t pid = static_cast<pid_t>(pid_);
  // End of file on its standard input (--parent-pipe), and SIGTERM for a daemon run without that option.
  ::close(pipe_);
  pipe_ = -1;
  ::kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, nullptr, WNOHANG) != 0) {
      Release();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  Release();
}

void DaemonProcess::Release() {
  if (pipe_ >= 0) ::close(pipe_);
  pipe_ = -1;
  pid_ = 0;
}

#endif

}  // namespace engine_bridge::detail
