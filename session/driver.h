/*
 * What every recording driver does around a session (session.h), written
 * once for `stoke record` (tools/cmd-record.c, a poll loop) and stoked
 * (daemon/, an epoll loop on worker threads): the fd limit, the signalfd,
 * a target's pidfd and exit, its exe and comm, ring fds that hung up, and
 * the time left to a deadline.
 */
#pragma once

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Raise the soft RLIMIT_NOFILE to the hard one (one event per thread and
 * CPU: a busy target needs many fds). Returns the soft limit now in force
 * (at most 1 << 30). */
unsigned stoke_driver_raise_nofile(void);

/* Block signals (n of them) and return a non-blocking, close-on-exec
 * signalfd for them, or -errno. */
int stoke_driver_signalfd(const int *signals, size_t n);

/* A pidfd for pid (it pins the process's identity: a reused pid is not
 * it), or -errno (-ENOSYS on a kernel without pidfds). */
int stoke_driver_pidfd(pid_t pid);

/* Whether a target that has (pidfd >= 0, readable: it polled POLLIN) or
 * has not (pidfd < 0: kill(pid, 0) is asked) a pidfd has exited. */
bool stoke_driver_target_exited(int pidfd, bool readable, pid_t pid);

/* A ring fd whose thread exited reports POLLHUP on every poll: stop
 * polling those (fd = -1); their rings are still drained. The first n
 * entries of pfd are ring fds. */
void stoke_driver_drop_hung_rings(struct pollfd *pfd, size_t n);

/* The target's name (/proc/PID/comm, no newline) into buf; 0 or -errno. */
int stoke_driver_read_comm(pid_t pid, char *buf, size_t size);
/* The target's executable path (/proc/PID/exe), malloc'd, or NULL. */
char *stoke_driver_read_exe(pid_t pid);

/* The poll timeout in ms from now to deadline (0: none), at most cap;
 * 0 once the deadline has passed. */
int stoke_driver_timeout_ms(double now, double deadline, int cap);
