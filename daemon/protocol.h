/*
 * The stoked control protocol: newline-delimited JSON over a UNIX stream
 * socket (docs/protocol.md is the reference for clients).
 *
 * A request is one JSON object on one line, at most STOKE_PROTO_MAX_REQUEST
 * bytes including the newline; the reply is one JSON object on one line.
 * stoke_request_parse is a pure function from bytes to a request (no I/O, no
 * global state), so it can be fuzzed and unit-tested; everything it accepts
 * has been range-checked, and everything it refuses comes with a one-line
 * reason that the daemon sends back as the error message.
 *
 * The reply builders live here too, so the daemon and the tests agree on
 * the shape of a reply.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sampler/sampler.h"

/* Longest request line, newline included. Attach options fit in ~300 bytes;
 * the limit bounds what one client can make the daemon buffer. */
#define STOKE_PROTO_MAX_REQUEST 4096
/* Nesting depth the JSON tokener accepts: requests are flat objects. */
#define STOKE_PROTO_MAX_DEPTH	 4
#define STOKE_PROTO_NAME_MAX	 64
#define STOKE_PROTO_FREQ_MAX	 100000
#define STOKE_PROTO_DURATION_MAX (366.0 * 86400.0)
#define STOKE_PROTO_ROTATE_MIN	 1.0
#define STOKE_PROTO_ROTATE_MAX	 86400.0
#define STOKE_PROTO_KEEP_MAX	 10000

enum stoke_op {
	STOKE_OP_NONE = 0,
	STOKE_OP_ATTACH,
	STOKE_OP_DETACH,
	STOKE_OP_LIST,
	STOKE_OP_STATUS,
	STOKE_OP_SNAPSHOT,
	STOKE_OP_SHUTDOWN,
};

struct stoke_request {
	enum stoke_op op;
	/* attach */
	pid_t pid;
	unsigned freq; /* 0 = the sampler's default */
	enum stoke_event event;
	enum stoke_callgraph callgraph;
	uint32_t stack_size; /* DWARF user-stack copy */
	double duration; /* seconds; 0 = until detach or target exit */
	bool continuous;
	double rotate; /* seconds between run directories (continuous) */
	unsigned keep; /* run directories kept (continuous); 0 = all */
	bool per_thread;
	bool no_kernel;
	char name[STOKE_PROTO_NAME_MAX + 1]; /* run directory name; "" = comm */
	/* detach, snapshot, status */
	uint64_t session; /* 0 = none given (status: the daemon) */
	bool discard;	  /* detach: do not write the final profile */
};

/*
 * Parse one request line (len bytes, a trailing '\n' allowed, no NUL
 * needed). Returns 0 and fills *ret, or -EINVAL / -E2BIG (longer than
 * STOKE_PROTO_MAX_REQUEST) / -ENOMEM with a one-line reason in err (always
 * NUL-terminated when errlen > 0). Unknown keys and wrongly typed or
 * out-of-range values are refused rather than ignored: a typo must not
 * silently change what gets profiled.
 */
int stoke_request_parse(const char *buf, size_t len, struct stoke_request *ret, char *err,
			size_t errlen);

/* Fill req with the defaults that stoke_request_parse starts from. */
void stoke_request_init(struct stoke_request *req);

/* Serialize a request as one line ending in '\n' (malloc'd). Fields equal to
 * their defaults are omitted. Returns 0 or -errno. */
int stoke_request_format(const struct stoke_request *req, char **ret);

const char *stoke_op_name(enum stoke_op op);

/* What list/status/attach replies say about one session. */
struct stoke_session_info {
	uint64_t id;
	pid_t pid;
	uid_t uid;	   /* the requester who attached */
	const char *comm;  /* target name */
	const char *state; /* "running", "ended" */
	const char *mode;  /* "oneshot" or "continuous" */
	const char *event;
	unsigned freq;
	double elapsed;	 /* seconds since attach */
	double duration; /* 0 = open-ended */
	double rotate;
	unsigned keep;
	uint64_t samples, lost;
	uint32_t threads;
	uint64_t runs_written;
	const char *last_run;	/* name of the newest run directory, or NULL */
	const char *last_error; /* newest write error, or NULL */
};

/* Reply lines (malloc'd, '\n'-terminated JSON), or NULL on ENOMEM. */
char *stoke_reply_error(int err, const char *message);
char *stoke_reply_ok(void);
/* {"ok":true,"session":{…}} */
char *stoke_reply_session(const struct stoke_session_info *info, const char *run);
/* {"ok":true,"sessions":[…]} */
char *stoke_reply_list(const struct stoke_session_info *infos, size_t n);
/* {"ok":true,"daemon":{…}} */
struct stoke_daemon_info {
	const char *version;
	pid_t pid;
	double uptime;
	unsigned sessions, max_sessions;
	unsigned clients, max_clients;
};
char *stoke_reply_daemon(const struct stoke_daemon_info *info);

/* The symbolic errno name used in error replies ("EPERM", …; "EIO" for
 * anything unnamed). */
const char *stoke_errno_name(int err);
