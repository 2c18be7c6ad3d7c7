// The one GNU socket call swtrace's HTTP server needs, which Swift's Glibc module leaves out
// (it is declared only under _GNU_SOURCE): accept4, to get a connection's descriptor
// non-blocking and close-on-exec in one step, so that no `-c` command started meanwhile
// inherits it.
#ifndef SWTRACE_CSOCKETSHIMS_H
#define SWTRACE_CSOCKETSHIMS_H

#include <sys/socket.h>

int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);

static inline int swt_accept_nonblocking(int listener) {
  return accept4(listener, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

#endif
