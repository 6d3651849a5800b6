/*
 * stoked's client connections (see stoked.h): accepting within the limits,
 * reading request lines (and a passed directory fd), queueing replies.
 */
#include "daemon/stoked.h"

/* ---- replies ----------------------------------------------------------- */

void stoked_queue_reply(struct client *c, char *line)
{
	size_t n;

	if (!line)
		line = strdup(
			"{\"ok\":false,\"error\":\"ENOMEM\",\"message\":\"out of memory\"}\n");
	if (!line)
		return;
	n = strlen(line);
	if (c->outlen - c->outoff + n > MAX_CLIENT_OUTPUT) {
		/* The client does not read its replies: drop it. */
		c->dead = true;
		free(line);
		return;
	}
	if (c->outoff && c->outoff < c->outlen) {
		/* Keep the unsent tail at the front, so the buffer is bounded
		 * by what is pending, not by everything ever sent. */
		memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
		c->outlen -= c->outoff;
		c->outoff = 0;
	}
	if (c->outoff == c->outlen) {
		free(c->out);
		c->out = line;
		c->outlen = n;
		c->outoff = 0;
		return;
	}
	{
		char *buf = realloc(c->out, c->outlen + n);

		if (buf) {
			memcpy(buf + c->outlen, line, n);
			c->out = buf;
			c->outlen += n;
		} else {
			c->dead = true;
		}
		free(line);
	}
}

void stoked_reply_error(struct client *c, int err, const char *msg)
{
	stoked_queue_reply(c, stoke_reply_error(err, msg));
}

/* Try to send what is queued; returns -errno when the client is gone. */
int stoked_client_flush(struct daemon *d, struct client *c)
{
	struct epoll_event ev;

	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c->outoff += (size_t)n;
		c->last_active = stoked_mono_s();
	}
	/* Level-triggered: once the peer has finished sending, watching
	 * EPOLLIN would wake the loop forever; only pending output matters. */
	/* A waiting client is not read either: its next request is answered
	 * after the one whose job runs. */
	ev.events = (c->eof || c->waiting ? 0 : EPOLLIN) | (c->outoff < c->outlen ? EPOLLOUT : 0);
	ev.data.u64 = stoked_watch_key(W_CLIENT, c->fd);
	epoll_ctl(d->ep, EPOLL_CTL_MOD, c->fd, &ev);
	return 0;
}

static void take_fds(struct client *c, struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		size_t nfds;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfds; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (c->passed_fd < 0)
				c->passed_fd = fd;
			else
				close(fd);
		}
	}
}

/* Process every complete line in the input buffer. */
void stoked_consume_lines(struct daemon *d, struct client *c)
{
	size_t start = 0;

	for (;;) {
		char *nl = memchr(c->in + start, '\n', c->inlen - start);
		size_t len;

		if (!nl)
			break;
		if (c->waiting)
			break; /* the rest once the job has replied */
		len = (size_t)(nl - (c->in + start)) + 1;
		if (c->skipping)
			c->skipping = false; /* the tail of an oversized line */
		else
			stoked_handle_line(d, c, c->in + start, len);
		start += len;
		if (d->stopping)
			break;
	}
	memmove(c->in, c->in + start, c->inlen - start);
	c->inlen -= start;
	if (c->inlen == sizeof(c->in)) {
		/* A full buffer without a newline: refuse the line, then drop
		 * its bytes up to the next newline and carry on. */
		char msg[96];

		snprintf(msg, sizeof(msg), "request longer than %d bytes", STOKE_PROTO_MAX_REQUEST);
		if (!c->skipping)
			stoked_reply_error(c, -E2BIG, msg);
		c->skipping = true;
		c->inlen = 0;
		if (c->passed_fd >= 0) {
			close(c->passed_fd);
			c->passed_fd = -1;
		}
	}
}

static void client_read(struct daemon *d, struct client *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} cmsg;
	struct iovec iov;
	struct msghdr mh;
	ssize_t n;

	for (int rounds = 0; rounds < 16 && !c->eof && !c->waiting; rounds++) {
		iov = (struct iovec){c->in + c->inlen, sizeof(c->in) - c->inlen};
		mh = (struct msghdr){.msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = cmsg.buf,
				     .msg_controllen = sizeof(cmsg.buf)};
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->eof = true;
			break;
		}
		take_fds(c, &mh);
		if (n == 0) {
			c->eof = true;
			break;
		}
		c->inlen += (size_t)n;
		c->last_active = stoked_mono_s();
		stoked_consume_lines(d, c);
		if (d->stopping)
			break;
	}
}

/* ---- clients ----------------------------------------------------------- */

void stoked_client_close(struct daemon *d, struct client *c)
{
	for (size_t i = 0; i < d->nclients; i++)
		if (d->clients[i] == c) {
			d->clients[i] = d->clients[--d->nclients];
			break;
		}
	stoked_unwatch(d, c->fd);
	close(c->fd);
	if (c->passed_fd >= 0)
		close(c->passed_fd);
	free(c->out);
	free(c);
}

static struct client *find_client(struct daemon *d, int fd)
{
	for (size_t i = 0; i < d->nclients; i++)
		if (d->clients[i]->fd == fd)
			return d->clients[i];
	return NULL;
}

/*
 * accept() failed with EMFILE/ENFILE: the connection stays in the backlog
 * and epoll reports the socket readable forever, so the loop would spin
 * (and log) without end. Free a spare fd, accept, and either keep the
 * client (root, while a spare is left after it: the daemon must stay
 * manageable) or tell it why in one line and close it; then take the spare
 * back. Returns false when nothing more can be accepted now (the listening
 * socket is then not watched until the tick has spares again).
 */
static bool accept_at_limit(struct daemon *d, int err)
{
	static const char msg[] = "{\"ok\":false,\"error\":\"EMFILE\",\"message\":"
				  "\"stoked is out of file descriptors; try again later\"}\n";
	struct stoke_auth_requester cred;
	int fd;

	if (stoked_ratelimit_ok(&d->rl_accept, stoked_mono_s(), "accept failures"))
		log_warn("cannot accept a client: %s", strerror(err));
	if (d->nspare == 0)
		stoked_spares_refill(d);
	if (d->nspare == 0) {
		struct epoll_event ev = {.events = 0,
					 .data.u64 = stoked_watch_key(W_LISTEN, d->listen_fd)};

		/* Not even one: stop watching the socket rather than spin. */
		if (epoll_ctl(d->ep, EPOLL_CTL_MOD, d->listen_fd, &ev) == 0)
			d->listen_paused = true;
		return false;
	}
	close(d->spare[--d->nspare]);
	/* A worker may open a file in between and take the freed slot:
	 * then this accept fails too, and the next round tries again. */
	fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		stoked_spares_refill(d);
		return errno == EMFILE || errno == ENFILE;
	}
	if (d->nspare > 0 && stoke_auth_peer(fd, d->admin_gid, &cred) == 0 && cred.uid == 0) {
		struct client *c = calloc(1, sizeof(*c));

		if (c && STOKE_GROW(d->clients, d->clients_cap, d->nclients + 1) == 0) {
			c->fd = fd;
			c->cred = cred;
			c->passed_fd = -1;
			c->serial = ++d->next_serial;
			c->last_active = stoked_mono_s();
			if (stoked_watch(d, W_CLIENT, fd, EPOLLIN) == 0) {
				d->clients[d->nclients++] = c;
				return true; /* its spare comes back when an fd is freed */
			}
		}
		free(c);
	}
	(void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	stoked_spares_refill(d);
	return true;
}

void stoked_accept_clients(struct daemon *d)
{
	for (int n = 0; n < 64; n++) {
		struct client *c;
		char msg[256];
		int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if ((errno == EMFILE || errno == ENFILE) && accept_at_limit(d, errno))
				continue;
			return;
		}
		c = calloc(1, sizeof(*c));
		if (!c || STOKE_GROW(d->clients, d->clients_cap, d->nclients + 1) < 0 ||
		    stoke_auth_peer(fd, d->admin_gid, &c->cred) < 0) {
			free(c);
			close(fd);
			continue;
		}
		if (stoked_client_over_limit(d, c->cred.uid, msg, sizeof(msg))) {
			_cleanup_free_ char *line = stoke_reply_error(-EBUSY, msg);

			if (line)
				(void)!send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
			if (stoked_ratelimit_ok(&d->rl_accept, stoked_mono_s(),
						"refused connections"))
				log_warn("refused a connection of uid %u: %s",
					 (unsigned)c->cred.uid, msg);
			close(fd);
			free(c);
			continue;
		}
		c->fd = fd;
		c->passed_fd = -1;
		c->serial = ++d->next_serial;
		c->last_active = stoked_mono_s();
		if (stoked_watch(d, W_CLIENT, fd, EPOLLIN) < 0) {
			close(fd);
			free(c);
			continue;
		}
		d->clients[d->nclients++] = c;
	}
}

/* One user may hold at most half the client slots, and the last slot is
 * root's: nobody can lock the others (root above all) out of the daemon by
 * keeping connections open. The fd budget (stoked_fd_budget) holds too. */
bool stoked_client_over_limit(struct daemon *d, uid_t uid, char *msg, size_t msglen)
{
	unsigned mine = 0;

	snprintf(msg, msglen, "too many clients (--max-clients %u)", d->opt.max_clients);
	if (d->nclients >= d->opt.max_clients)
		return true;
	if (uid == 0)
		return false;
	if (d->nclients + 1 >= d->opt.max_clients)
		return true;
	for (size_t i = 0; i < d->nclients; i++)
		mine += d->clients[i]->cred.uid == uid;
	if (mine >= STOKE_MAX(d->opt.max_clients / 2, 1u)) {
		snprintf(msg, msglen, "too many clients for uid %u (half of --max-clients %u)",
			 (unsigned)uid, d->opt.max_clients);
		return true;
	}
	return stoked_fd_budget(d, uid, 2, msg, msglen) < 0;
}

void stoked_client_event(struct daemon *d, int fd, uint32_t events)
{
	struct client *c = find_client(d, fd);

	if (!c)
		return;
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		client_read(d, c);
	/* A waiting client is not read, but a hangup is reported anyway (and
	 * again on every wakeup): the peer is gone, so is its reply. */
	if (c->dead || stoked_client_flush(d, c) < 0 ||
	    (c->eof && !c->waiting && c->outoff == c->outlen) || (events & EPOLLERR) ||
	    (c->waiting && (events & EPOLLHUP)))
		stoked_client_close(d, c);
}

