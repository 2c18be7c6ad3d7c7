// Starting the `-c` command so that it never outlives swtrace: what Swift cannot do between
// fork and exec (only async-signal-safe calls are allowed there in a threaded process), in C.
#ifndef SWTRACE_CPROCESSSHIMS_H
#define SWTRACE_CPROCESSSHIMS_H

#include <sys/types.h>

// Starts `argv` (argv[0] is the program's path) under a guardian process and returns the
// guardian's pid, which leads a new process group holding the guardian and the command;
// -1 with errno when fork(2) fails.
//
// The guardian asks the kernel for SIGTERM when swtrace dies (PR_SET_PDEATHSIG, delivered
// even when swtrace is killed with SIGKILL), and on that signal, or SIGTERM, SIGINT or
// SIGHUP from swtrace, sends SIGTERM to the whole group, waits `grace_ms` for the command,
// then sends SIGKILL. When the command ends on its own, the guardian ends the same way:
// with its exit status, or by its signal (with no core dump). The command starts with
// default signal handling, an empty signal mask, standard output on `stdout_fd` when it is
// not -1, and every descriptor swtrace did not mark close-on-exec; the guardian keeps none.
pid_t swt_spawn_guarded(char *const argv[], char *const envp[], int stdout_fd, int grace_ms);

// A descriptor that polls readable (POLLIN) once process `pid` has ended, close-on-exec
// (pidfd_open(2), Linux 5.3); -1 with errno where the kernel has none.
int swt_pidfd_open(pid_t pid);

#endif
