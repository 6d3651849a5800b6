/*
 * The stoked control protocol: request parsing (a pure function from bytes
 * to struct stoke_request, fuzzable) and reply building, both with json-c.
 *
 * The parser is strict on purpose. Requests come from other users through a
 * root daemon, so every key is known, every value has one accepted type and
 * a range, and the name that ends up in a directory name is restricted to a
 * safe alphabet. json-c's tokener is given the exact length (it never reads
 * past it) and a small depth limit (requests are flat objects).
 */
#include "daemon/protocol.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {
	[STOKE_OP_NONE] = "none",	  [STOKE_OP_ATTACH] = "attach",
	[STOKE_OP_DETACH] = "detach",	  [STOKE_OP_LIST] = "list",
	[STOKE_OP_STATUS] = "status",	  [STOKE_OP_SNAPSHOT] = "snapshot",
	[STOKE_OP_SHUTDOWN] = "shutdown",
};

const char *stoke_op_name(enum stoke_op op)
{
	if ((size_t)op < sizeof(op_names) / sizeof(op_names[0]))
		return op_names[op];
	return "none";
}

void stoke_request_init(struct stoke_request *req)
{
	memset(req, 0, sizeof(*req));
	req->event = STOKE_EVENT_CPU_CLOCK;
	/* The same default as `stoke record`: -g auto. */
	req->callgraph = STOKE_CALLGRAPH_DWARF;
	req->stack_size = STOKE_DWARF_STACK_DEFAULT;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
						      ...)
{
	va_list ap;

	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Which keys each operation accepts, as a bitmask over key_names. */
enum key {
	K_OP,
	K_PID,
	K_FREQ,
	K_EVENT,
	K_CALLGRAPH,
	K_DURATION,
	K_CONTINUOUS,
	K_ROTATE,
	K_KEEP,
	K_PER_THREAD,
	K_NO_KERNEL,
	K_NAME,
	K_SESSION,
	K_DISCARD,
	K_COUNT
};

static const char *const key_names[K_COUNT] = {
	"op",	  "pid",  "freq",	"event",     "call_graph", "duration", "continuous",
	"rotate", "keep", "per_thread", "no_kernel", "name",	   "session",  "discard",
};

#define BIT(k) (1u << (k))
static const unsigned op_keys[] = {
	[STOKE_OP_ATTACH] = BIT(K_OP) | BIT(K_PID) | BIT(K_FREQ) | BIT(K_EVENT) | BIT(K_CALLGRAPH) |
			    BIT(K_DURATION) | BIT(K_CONTINUOUS) | BIT(K_ROTATE) | BIT(K_KEEP) |
			    BIT(K_PER_THREAD) | BIT(K_NO_KERNEL) | BIT(K_NAME),
	[STOKE_OP_DETACH] = BIT(K_OP) | BIT(K_SESSION) | BIT(K_DISCARD),
	[STOKE_OP_LIST] = BIT(K_OP),
	[STOKE_OP_STATUS] = BIT(K_OP) | BIT(K_SESSION),
	[STOKE_OP_SNAPSHOT] = BIT(K_OP) | BIT(K_SESSION),
	[STOKE_OP_SHUTDOWN] = BIT(K_OP),
};

static int find_key(const char *name)
{
	for (int k = 0; k < K_COUNT; k++)
		if (!strcmp(name, key_names[k]))
			return k;
	return -1;
}

/* An integer in [min, max]. json-c keeps integers as int64 (or uint64 above
 * INT64_MAX); doubles such as 1.5 are refused rather than truncated. */
static int get_int(json_object *v, const char *key, int64_t min, int64_t max, int64_t *ret,
		   char *err, size_t errlen)
{
	int64_t x;

	if (!json_object_is_type(v, json_type_int))
		return fail(err, errlen, "'%s' must be an integer", key);
	errno = 0;
	x = json_object_get_int64(v);
	/* json-c saturates out-of-range numbers at INT64_MIN/MAX and sets
	 * errno; a uint64 above INT64_MAX also reads back as INT64_MAX. */
	if (errno == ERANGE || x < min || x > max)
		return fail(err, errlen, "'%s' must be between %lld and %lld", key, (long long)min,
			    (long long)max);
	*ret = x;
	return 0;
}

static int get_number(json_object *v, const char *key, double min, double max, double *ret,
		      char *err, size_t errlen)
{
	double x;

	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return fail(err, errlen, "'%s' must be a number", key);
	x = json_object_get_double(v);
	if (!isfinite(x) || x < min || x > max)
		return fail(err, errlen, "'%s' must be between %g and %g", key, min, max);
	*ret = x;
	return 0;
}

static int get_bool(json_object *v, const char *key, bool *ret, char *err, size_t errlen)
{
	if (!json_object_is_type(v, json_type_boolean))
		return fail(err, errlen, "'%s' must be true or false", key);
	*ret = json_object_get_boolean(v);
	return 0;
}

static int parse_op(const char *s, enum stoke_op *ret)
{
	for (size_t i = 1; i < sizeof(op_names) / sizeof(op_names[0]); i++)
		if (!strcmp(s, op_names[i])) {
			*ret = (enum stoke_op)i;
			return 0;
		}
	return -EINVAL;
}

/* stoked attaches: wall (the signal sampler's, launch only) is refused. */
static int parse_event_name(const char *s, enum stoke_event *ret)
{
	if (stoke_event_parse(s, ret) < 0 || *ret == STOKE_EVENT_WALL)
		return -EINVAL;
	return 0;
}

/* Names become part of a directory name: no '/', no leading '.', printable
 * ASCII only. */
static bool valid_name(const char *s, size_t len)
{
	if (len == 0 || len > STOKE_PROTO_NAME_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == '+'))
			return false;
	}
	return true;
}

static int parse_field(struct stoke_request *req, int k, json_object *v, char *err, size_t errlen)
{
	const char *key = key_names[k];
	int64_t i = 0;
	int r = 0;

	switch ((enum key)k) {
	case K_OP:
		break; /* handled first */
	case K_PID:
		r = get_int(v, key, 1, 0x3fffffff, &i, err, errlen);
		req->pid = (pid_t)i;
		break;
	case K_FREQ:
		r = get_int(v, key, 1, STOKE_PROTO_FREQ_MAX, &i, err, errlen);
		req->freq = (unsigned)i;
		break;
	case K_EVENT:
		if (!json_object_is_type(v, json_type_string) ||
		    parse_event_name(json_object_get_string(v), &req->event) < 0)
			r = fail(err, errlen, "'event' must be cpu-clock, task-clock or cycles");
		break;
	case K_CALLGRAPH:
		if (!json_object_is_type(v, json_type_string) ||
		    stoke_callgraph_parse(json_object_get_string(v), &req->callgraph,
					  &req->stack_size) < 0)
			r = fail(err, errlen,
				 "'call_graph' must be \"fp\", \"dwarf\", \"dwarf,BYTES\" or \"auto\"");
		break;
	case K_DURATION:
		r = get_number(v, key, 0, STOKE_PROTO_DURATION_MAX, &req->duration, err, errlen);
		break;
	case K_CONTINUOUS:
		r = get_bool(v, key, &req->continuous, err, errlen);
		break;
	case K_ROTATE:
		r = get_number(v, key, STOKE_PROTO_ROTATE_MIN, STOKE_PROTO_ROTATE_MAX, &req->rotate,
			       err, errlen);
		break;
	case K_KEEP:
		r = get_int(v, key, 0, STOKE_PROTO_KEEP_MAX, &i, err, errlen);
		req->keep = (unsigned)i;
		break;
	case K_PER_THREAD:
		r = get_bool(v, key, &req->per_thread, err, errlen);
		break;
	case K_NO_KERNEL:
		r = get_bool(v, key, &req->no_kernel, err, errlen);
		break;
	case K_NAME:
		if (!json_object_is_type(v, json_type_string) ||
		    !valid_name(json_object_get_string(v), (size_t)json_object_get_string_len(v)))
			r = fail(err, errlen,
				 "'name' must be 1-%d characters of [A-Za-z0-9._+-], not starting "
				 "with '.'",
				 STOKE_PROTO_NAME_MAX);
		else
			memcpy(req->name, json_object_get_string(v),
			       (size_t)json_object_get_string_len(v) + 1);
		break;
	case K_SESSION:
		/* Session ids are positive; the upper bound keeps them exact
		 * in every JSON implementation (2^53). */
		r = get_int(v, key, 1, (int64_t)1 << 53, &i, err, errlen);
		req->session = (uint64_t)i;
		break;
	case K_DISCARD:
		r = get_bool(v, key, &req->discard, err, errlen);
		break;
	case K_COUNT:
		break;
	}
	return r;
}

/* Cross-field rules, once every field is in. */
static int check_request(const struct stoke_request *req, unsigned seen, char *err, size_t errlen)
{
	switch (req->op) {
	case STOKE_OP_ATTACH:
		if (!(seen & BIT(K_PID)))
			return fail(err, errlen, "attach needs 'pid'");
		if (req->continuous && !(seen & BIT(K_ROTATE)))
			return fail(err, errlen, "continuous mode needs 'rotate' (seconds)");
		if (!req->continuous && (seen & (BIT(K_ROTATE) | BIT(K_KEEP))))
			return fail(err, errlen, "'rotate' and 'keep' need \"continuous\": true");
		break;
	case STOKE_OP_DETACH:
	case STOKE_OP_SNAPSHOT:
		if (!(seen & BIT(K_SESSION)))
			return fail(err, errlen, "%s needs 'session'", stoke_op_name(req->op));
		break;
	default:
		break;
	}
	return 0;
}

/*
 * Whether a JSON string in buf (a key or a value) holds a control character,
 * raw or escaped. json-c decodes "\u0000" into a NUL inside the string and
 * every consumer then sees a C string cut short: "status\u0000junk" would be
 * the op "status". No field has a use for control characters, so the request
 * is refused before it is parsed. A lexer over the raw bytes is enough: only
 * the string state and the escapes matter; malformed JSON is json-c's to
 * refuse.
 */
static bool control_in_string(const char *buf, size_t len)
{
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (!in_string) {
			in_string = c == '"';
			continue;
		}
		if (c == '"') {
			in_string = false;
		} else if (c < 0x20 || c == 0x7f) {
			return true;
		} else if (c == '\\' && i + 1 < len) {
			i++;
			if (strchr("bfnrt", buf[i]))
				return true;
			if (buf[i] == 'u' && i + 4 < len) {
				char hex[5] = {buf[i + 1], buf[i + 2], buf[i + 3], buf[i + 4], 0};
				char *end;
				unsigned long u = strtoul(hex, &end, 16);

				if (end == hex + 4 && (u < 0x20 || u == 0x7f))
					return true;
				i += 4;
			}
		}
	}
	return false;
}

/* A key the client sent, fit to quote in a one-line reason: at most 40
 * bytes, control characters and non-ASCII bytes shown as '?'. */
static const char *printable(const char *in, char out[41])
{
	size_t i;

	for (i = 0; i < 40 && in[i]; i++)
		out[i] = (unsigned char)in[i] < 0x20 || (unsigned char)in[i] >= 0x7f ? '?' : in[i];
	out[i] = '\0';
	return out;
}

static int parse_object(json_object *obj, struct stoke_request *req, char *err, size_t errlen)
{
	json_object *opv;
	unsigned seen = 0, allowed;
	int r;

	if (!json_object_is_type(obj, json_type_object))
		return fail(err, errlen, "a request must be a JSON object");
	if (!json_object_object_get_ex(obj, "op", &opv))
		return fail(err, errlen, "missing 'op'");
	if (!json_object_is_type(opv, json_type_string) ||
	    parse_op(json_object_get_string(opv), &req->op) < 0)
		return fail(err, errlen,
			    "unknown 'op' (attach, detach, list, status, snapshot, shutdown)");
	allowed = op_keys[req->op];
	json_object_object_foreach(obj, key, val)
	{
		char shown[41];
		int k = find_key(key);

		if (k < 0 || !(allowed & BIT(k)))
			return fail(err, errlen, "unexpected key '%s' for %s", printable(key, shown),
				    stoke_op_name(req->op));
		/* A duplicate key never gets here: json-c keeps the last
		 * one (documented in docs/protocol.md). */
		seen |= BIT(k);
		r = parse_field(req, k, val, err, errlen);
		if (r < 0)
			return r;
	}
	return check_request(req, seen, err, errlen);
}

int stoke_request_parse(const char *buf, size_t len, struct stoke_request *ret, char *err,
			size_t errlen)
{
	struct stoke_request req;
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	json_object *obj;
	size_t used;
	int r;

	if (errlen)
		err[0] = '\0';
	if (len > STOKE_PROTO_MAX_REQUEST) {
		fail(err, errlen, "request longer than %d bytes", STOKE_PROTO_MAX_REQUEST);
		return -E2BIG;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == 0)
		return fail(err, errlen, "empty request");
	/* json-c would stop at a NUL and report success on the prefix. */
	if (memchr(buf, '\0', len))
		return fail(err, errlen, "request contains a NUL byte");
	if (control_in_string(buf, len))
		return fail(err, errlen,
			    "a string holds a control character (\\u0000-\\u001f or \\u007f)");
	tok = json_tokener_new_ex(STOKE_PROTO_MAX_DEPTH);
	if (!tok) {
		fail(err, errlen, "out of memory");
		return -ENOMEM;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	used = (size_t)json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!obj || jerr != json_tokener_success) {
		json_object_put(obj);
		if (jerr == json_tokener_continue)
			return fail(err, errlen, "malformed JSON: incomplete object");
		return fail(err, errlen, "malformed JSON: %s", json_tokener_error_desc(jerr));
	}
	/* Trailing whitespace is fine; a second value on the line is not. */
	for (; used < len; used++)
		if (buf[used] != ' ' && buf[used] != '\t') {
			json_object_put(obj);
			return fail(err, errlen, "trailing data after the JSON object");
		}
	stoke_request_init(&req);
	r = parse_object(obj, &req, err, errlen);
	json_object_put(obj);
	if (r < 0)
		return r;
	*ret = req;
	return 0;
}

static const char *event_str(enum stoke_event e)
{
	switch (e) {
	case STOKE_EVENT_TASK_CLOCK:
		return "task-clock";
	case STOKE_EVENT_CYCLES:
		return "cycles";
	case STOKE_EVENT_WALL: /* the CLI's signal sampler only */
		return "wall";
	case STOKE_EVENT_CPU_CLOCK:
		break;
	}
	return "cpu-clock";
}

/* Serialize obj as one line and drop it. */
static char *finish_line(json_object *obj)
{
	const char *s;
	char *line = NULL;
	size_t n;

	if (!obj)
		return NULL;
	s = json_object_to_json_string_ext(obj,
					   JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s) {
		n = strlen(s);
		line = malloc(n + 2);
		if (line) {
			memcpy(line, s, n);
			line[n] = '\n';
			line[n + 1] = '\0';
		}
	}
	json_object_put(obj);
	return line;
}

int stoke_request_format(const struct stoke_request *req, char **ret)
{
	json_object *o = json_object_new_object();
	char *line;

	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "op", json_object_new_string(stoke_op_name(req->op)));
	if (req->op == STOKE_OP_ATTACH) {
		json_object_object_add(o, "pid", json_object_new_int64(req->pid));
		if (req->freq)
			json_object_object_add(o, "freq", json_object_new_int64(req->freq));
		if (req->event != STOKE_EVENT_CPU_CLOCK)
			json_object_object_add(o, "event",
					       json_object_new_string(event_str(req->event)));
		if (req->callgraph != STOKE_CALLGRAPH_DWARF || req->stack_size != STOKE_DWARF_STACK_DEFAULT) {
			char cg[32];

			json_object_object_add(o, "call_graph",
					       json_object_new_string(stoke_callgraph_format(
						       req->callgraph, req->stack_size, cg, sizeof(cg))));
		}
		if (req->duration > 0)
			json_object_object_add(o, "duration",
					       json_object_new_double(req->duration));
		if (req->continuous) {
			json_object_object_add(o, "continuous", json_object_new_boolean(1));
			json_object_object_add(o, "rotate", json_object_new_double(req->rotate));
			json_object_object_add(o, "keep", json_object_new_int64(req->keep));
		}
		if (req->per_thread)
			json_object_object_add(o, "per_thread", json_object_new_boolean(1));
		if (req->no_kernel)
			json_object_object_add(o, "no_kernel", json_object_new_boolean(1));
		if (req->name[0])
			json_object_object_add(o, "name", json_object_new_string(req->name));
	}
	if (req->session)
		json_object_object_add(o, "session", json_object_new_int64((int64_t)req->session));
	if (req->op == STOKE_OP_DETACH && req->discard)
		json_object_object_add(o, "discard", json_object_new_boolean(1));
	line = finish_line(o);
	if (!line)
		return -ENOMEM;
	*ret = line;
	return 0;
}

const char *stoke_errno_name(int err)
{
	switch (err < 0 ? -err : err) {
	case EPERM:
		return "EPERM";
	case EACCES:
		return "EACCES";
	case ESRCH:
		return "ESRCH";
	case ENOENT:
		return "ENOENT";
	case EINVAL:
		return "EINVAL";
	case E2BIG:
		return "E2BIG";
	case EBUSY:
		return "EBUSY";
	case ENOMEM:
		return "ENOMEM";
	case EMFILE:
		return "EMFILE";
	case EDQUOT:
		return "EDQUOT";
	case ENOSPC:
		return "ENOSPC";
	case ENOTDIR:
		return "ENOTDIR";
	case EEXIST:
		return "EEXIST";
	case EROFS:
		return "EROFS";
	case EOPNOTSUPP:
		return "EOPNOTSUPP";
	case ESHUTDOWN:
		return "ESHUTDOWN";
	default:
		return "EIO";
	}
}

char *stoke_reply_error(int err, const char *message)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(stoke_errno_name(err)));
	json_object_object_add(o, "message", json_object_new_string(message ? message : ""));
	return finish_line(o);
}

char *stoke_reply_ok(void)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return finish_line(o);
}

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *session_json(const struct stoke_session_info *in)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "id", json_object_new_int64((int64_t)in->id));
	json_object_object_add(o, "pid", json_object_new_int64(in->pid));
	json_object_object_add(o, "uid", json_object_new_int64(in->uid));
	json_object_object_add(o, "comm", str_or_null(in->comm));
	json_object_object_add(o, "state", str_or_null(in->state));
	json_object_object_add(o, "mode", str_or_null(in->mode));
	json_object_object_add(o, "event", str_or_null(in->event));
	json_object_object_add(o, "freq", json_object_new_int64(in->freq));
	json_object_object_add(o, "elapsed_s", json_object_new_double(in->elapsed));
	json_object_object_add(o, "duration_s", json_object_new_double(in->duration));
	if (in->rotate > 0) {
		json_object_object_add(o, "rotate_s", json_object_new_double(in->rotate));
		json_object_object_add(o, "keep", json_object_new_int64(in->keep));
	}
	json_object_object_add(o, "samples", json_object_new_int64((int64_t)in->samples));
	json_object_object_add(o, "lost", json_object_new_int64((int64_t)in->lost));
	json_object_object_add(o, "threads", json_object_new_int64(in->threads));
	json_object_object_add(o, "runs_written", json_object_new_int64((int64_t)in->runs_written));
	json_object_object_add(o, "last_run", str_or_null(in->last_run));
	json_object_object_add(o, "last_error", str_or_null(in->last_error));
	return o;
}

char *stoke_reply_session(const struct stoke_session_info *info, const char *run)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "session", session_json(info));
	if (run)
		json_object_object_add(o, "run", json_object_new_string(run));
	return finish_line(o);
}

char *stoke_reply_list(const struct stoke_session_info *infos, size_t n)
{
	json_object *o = json_object_new_object();
	json_object *a = json_object_new_array();

	if (!o || !a) {
		json_object_put(o);
		json_object_put(a);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, session_json(&infos[i]));
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "sessions", a);
	return finish_line(o);
}

char *stoke_reply_daemon(const struct stoke_daemon_info *in)
{
	json_object *o = json_object_new_object();
	json_object *d = json_object_new_object();

	if (!o || !d) {
		json_object_put(o);
		json_object_put(d);
		return NULL;
	}
	json_object_object_add(d, "version", str_or_null(in->version));
	json_object_object_add(d, "pid", json_object_new_int64(in->pid));
	json_object_object_add(d, "uptime_s", json_object_new_double(in->uptime));
	json_object_object_add(d, "sessions", json_object_new_int64(in->sessions));
	json_object_object_add(d, "max_sessions", json_object_new_int64(in->max_sessions));
	json_object_object_add(d, "clients", json_object_new_int64(in->clients));
	json_object_object_add(d, "max_clients", json_object_new_int64(in->max_clients));
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "daemon", d);
	return finish_line(o);
}
