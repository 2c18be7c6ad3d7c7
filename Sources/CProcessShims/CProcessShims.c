#define _GNU_SOURCE
#include "CProcessShims.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// Everything below runs in forked children of a threaded process: system calls only, no
// allocation, no locks, no stdio.

static void reset_signals(void) {
  struct sigaction defaults = {0};
  defaults.sa_handler = SIG_DFL;
  for (int signal = 1; signal < NSIG; signal++) {
    if (signal != SIGKILL && signal != SIGSTOP) sigaction(signal, &defaults, 0);
  }
}

static void close_all_descriptors(void) {
  // close_range(2), Linux 5.9; on older kernels one close per possible descriptor.
  if (syscall(SYS_close_range, 0U, ~0U, 0U) == 0) return;
  struct rlimit limit;
  long last = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY ? (long)limit.rlim_cur : 65536;
  for (long fd = 0; fd < last; fd++) close((int)fd);
}

static void sleep_ms(int ms) {
  struct timespec pause = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
  }
}

// Ends the guardian the way the command ended: its exit status, or its signal.
static void end_like(int status) {
  if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int signal = WTERMSIG(status);
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    struct sigaction defaults = {0};
    defaults.sa_handler = SIG_DFL;
    sigaction(signal, &defaults, 0);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, signal);
    sigprocmask(SIG_UNBLOCK, &only, 0);
    kill(getpid(), signal);
    _exit(128 + signal);
  }
  _exit(1);
}

static void guard(pid_t swtrace, char *const argv[], char *const envp[], int stdout_fd, int grace_ms) {
  setpgid(0, 0);
  reset_signals();
  sigset_t watched;
  sigemptyset(&watched);
  sigaddset(&watched, SIGTERM);
  sigaddset(&watched, SIGINT);
  sigaddset(&watched, SIGHUP);
  sigaddset(&watched, SIGCHLD);
  sigprocmask(SIG_SETMASK, &watched, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  // swtrace may have died before the request above: then no signal will come.
  int orphaned = getppid() != swtrace;

  // The command is started with posix_spawn (a vfork-like clone that shares this process's
  // memory until the exec) rather than a second fork, which would copy the page tables of
  // the whole address space inherited from swtrace once more. It starts with an empty
  // signal mask and the default actions (reset above).
  pid_t command = -1;
  int spawn_error = 0;
  if (!orphaned) {
    if (stdout_fd >= 0 && stdout_fd != 1) dup2(stdout_fd, 1);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
    spawn_error = posix_spawn(&command, argv[0], 0, &attributes, argv, envp);
    posix_spawnattr_destroy(&attributes);
    if (spawn_error != 0) command = -1;
  }
  close_all_descriptors();
  // As a shell that cannot run its command: 127 when /bin/sh is not there, 126 otherwise.
  if (command < 0) _exit(orphaned ? 128 + SIGTERM : spawn_error == ENOENT ? 127 : 126);

  for (;;) {
    int status;
    if (!orphaned) {
      siginfo_t info;
      int signal = sigwaitinfo(&watched, &info);
      if (signal < 0) continue;
      if (signal == SIGCHLD) {
        pid_t ended = waitpid(command, &status, WNOHANG);
        if (ended == command) end_like(status);
        continue;
      }
    }
    // swtrace died or asked the command to stop: the whole group goes.
    kill(0, SIGTERM);
    for (int waited = 0; waited < grace_ms; waited += 10) {
      if (waitpid(command, &status, WNOHANG) == command) break;
      sleep_ms(10);
    }
    kill(0, SIGKILL);
    _exit(128 + SIGTERM);
  }
}

pid_t swt_spawn_guarded(char *const argv[], char *const envp[], int stdout_fd, int grace_ms) {
  pid_t swtrace = getpid();
  pid_t guardian = fork();
  if (guardian == 0) guard(swtrace, argv, envp, stdout_fd, grace_ms);
  if (guardian > 0) {
    // Also here, so that swtrace can signal the group as soon as this returns.
    setpgid(guardian, guardian);
  }
  return guardian;
}

int swt_pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, pid, 0U);
#else
  errno = ENOSYS;
  return -1;
#endif
}
