/*
 * The recording driver's shared pieces (see driver.h).
 */
#include "session/driver.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"

unsigned stoke_driver_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur > 1U << 30 ? 1U << 30 : (unsigned)rl.rlim_cur;
}

int stoke_driver_signalfd(const int *signals, size_t n)
{
	sigset_t mask;
	int fd;

	sigemptyset(&mask);
	for (size_t i = 0; i < n; i++)
		sigaddset(&mask, signals[i]);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int stoke_driver_pidfd(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	return fd < 0 ? -errno : fd;
}

bool stoke_driver_target_exited(int pidfd, bool readable, pid_t pid)
{
	if (pidfd >= 0)
		return readable;
	return kill(pid, 0) < 0 && errno == ESRCH;
}

void stoke_driver_drop_hung_rings(struct pollfd *pfd, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pfd[i].revents & (POLLHUP | POLLERR))
			pfd[i].fd = -1;
}

int stoke_driver_read_comm(pid_t pid, char *buf, size_t size)
{
	_cleanup_free_ char *comm = NULL;
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	n = stoke_read_file(path, &comm, 256);
	if (n < 0)
		return (int)n;
	while (n > 0 && comm[n - 1] == '\n')
		comm[--n] = '\0';
	snprintf(buf, size, "%s", comm);
	return 0;
}

char *stoke_driver_read_exe(pid_t pid)
{
	char path[64], buf[4096];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

int stoke_driver_timeout_ms(double now, double deadline, int cap)
{
	if (!deadline)
		return cap;
	if (now >= deadline)
		return 0;
	if ((deadline - now) * 1000 < cap)
		return (int)ceil((deadline - now) * 1000);
	return cap;
}
