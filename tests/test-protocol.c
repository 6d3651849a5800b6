/*
 * Unit tests for the stoked control protocol (daemon/protocol.h): every
 * operation parses, every rule refuses what it should with a reason, the
 * size and depth limits hold, a formatted request parses back to itself,
 * replies are valid JSON with their fields, and a few thousand mutated and
 * random inputs are refused or accepted without a crash (the sanitizer
 * build turns any memory error there into a failure).
 */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/protocol.h"

static int parse(const char *s, struct stoke_request *req, char *err, size_t errlen)
{
	return stoke_request_parse(s, strlen(s), req, err, errlen);
}

/* Parse s, expect a refusal whose reason contains what. */
static void refused(const char *s, const char *what)
{
	struct stoke_request req;
	char err[256];
	int r = parse(s, &req, err, sizeof(err));

	ck_assert_msg(r == -EINVAL, "accepted %s (r=%d)", s, r);
	ck_assert_msg(strstr(err, what), "reason for %s is '%s', expected '%s'", s, err, what);
}

START_TEST(test_callgraph_modes)
{
	struct stoke_request req;
	char err[256];

	ck_assert_int_eq(parse("{\"op\":\"attach\",\"pid\":1,\"call_graph\":\"dwarf,16384\"}", &req,
			       err, sizeof(err)),
			 0);
	ck_assert_int_eq(req.callgraph, STOKE_CALLGRAPH_DWARF);
	ck_assert_uint_eq(req.stack_size, 16384);
	/* The default is record's: auto, DWARF with 8 KiB copies. */
	ck_assert_int_eq(parse("{\"op\":\"attach\",\"pid\":1}", &req, err, sizeof(err)), 0);
	ck_assert_int_eq(req.callgraph, STOKE_CALLGRAPH_DWARF);
	ck_assert_uint_eq(req.stack_size, STOKE_DWARF_STACK_DEFAULT);
}
END_TEST

START_TEST(test_attach_full)
{
	struct stoke_request req;
	char err[256];

	ck_assert_int_eq(parse("{\"op\":\"attach\",\"pid\":1234,\"freq\":499,\"event\":"
			       "\"task-clock\",\"call_graph\":\"fp\",\"duration\":2.5,"
			       "\"continuous\":true,\"rotate\":1,\"keep\":3,\"per_thread\":true,"
			       "\"no_kernel\":true,\"name\":\"web-1.x\"}\n",
			       &req, err, sizeof(err)),
			 0);
	ck_assert_int_eq(req.op, STOKE_OP_ATTACH);
	ck_assert_int_eq(req.pid, 1234);
	ck_assert_uint_eq(req.freq, 499);
	ck_assert_int_eq(req.event, STOKE_EVENT_TASK_CLOCK);
	ck_assert_int_eq(req.callgraph, STOKE_CALLGRAPH_FP);
	ck_assert(req.duration == 2.5);
	ck_assert(req.continuous);
	ck_assert(req.rotate == 1.0);
	ck_assert_uint_eq(req.keep, 3);
	ck_assert(req.per_thread && req.no_kernel);
	ck_assert_str_eq(req.name, "web-1.x");
}
END_TEST

/* The protocol names events as the CLI does (one parser): perf's
 * cpu-cycles is cycles; wall (the signal sampler's, launch only) is not
 * for an attach. */
START_TEST(test_event_names)
{
	struct stoke_request req;
	char err[256];

	ck_assert_int_eq(parse("{\"op\":\"attach\",\"pid\":1,\"event\":\"cpu-cycles\"}", &req,
			       err, sizeof(err)),
			 0);
	ck_assert_int_eq(req.event, STOKE_EVENT_CYCLES);
	ck_assert_int_eq(parse("{\"op\":\"attach\",\"pid\":1,\"event\":\"cycles\"}", &req,
			       err, sizeof(err)),
			 0);
	ck_assert_int_eq(req.event, STOKE_EVENT_CYCLES);
	ck_assert_int_lt(parse("{\"op\":\"attach\",\"pid\":1,\"event\":\"wall\"}", &req,
			       err, sizeof(err)),
			 0);
	ck_assert_int_lt(parse("{\"op\":\"attach\",\"pid\":1,\"event\":\"bogus\"}", &req,
			       err, sizeof(err)),
			 0);
}
END_TEST

START_TEST(test_attach_defaults)
{
	struct stoke_request req;
	char err[256];

	ck_assert_int_eq(parse("{\"op\":\"attach\",\"pid\":7}", &req, err, sizeof(err)), 0);
	ck_assert_uint_eq(req.freq, 0);
	ck_assert_int_eq(req.event, STOKE_EVENT_CPU_CLOCK);
	ck_assert(req.duration == 0 && !req.continuous && !req.per_thread);
	ck_assert_str_eq(req.name, "");
	ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(test_other_ops)
{
	struct stoke_request req;
	char err[256];

	ck_assert_int_eq(
		parse("{\"op\":\"detach\",\"session\":3,\"discard\":true}", &req, err, sizeof(err)),
		0);
	ck_assert_int_eq(req.op, STOKE_OP_DETACH);
	ck_assert_uint_eq(req.session, 3);
	ck_assert(req.discard);
	ck_assert_int_eq(parse("{\"op\":\"list\"}", &req, err, sizeof(err)), 0);
	ck_assert_int_eq(req.op, STOKE_OP_LIST);
	ck_assert_int_eq(parse(" {\"op\":\"status\"} \r\n", &req, err, sizeof(err)), 0);
	ck_assert_int_eq(req.op, STOKE_OP_STATUS);
	ck_assert_uint_eq(req.session, 0);
	ck_assert_int_eq(parse("{\"op\":\"status\",\"session\":9}", &req, err, sizeof(err)), 0);
	ck_assert_uint_eq(req.session, 9);
	ck_assert_int_eq(parse("{\"op\":\"snapshot\",\"session\":1}", &req, err, sizeof(err)), 0);
	ck_assert_int_eq(req.op, STOKE_OP_SNAPSHOT);
	ck_assert_int_eq(parse("{\"op\":\"shutdown\"}", &req, err, sizeof(err)), 0);
	ck_assert_int_eq(req.op, STOKE_OP_SHUTDOWN);
}
END_TEST

START_TEST(test_malformed)
{
	refused("", "empty");
	refused("\n", "empty");
	refused("{", "malformed JSON");
	refused("{\"op\":\"list\"", "malformed JSON");
	refused("{op:list}", "malformed JSON");
	refused("{\"op\":\"list\",}", "malformed JSON");
	/* json-c's strict mode reports a second value itself; the parser's
	 * own trailing-data check backs it up. */
	refused("{\"op\":\"list\"} {\"op\":\"list\"}", "malformed JSON");
	refused("{\"op\":\"list\"} x", "malformed JSON");
	refused("[1,2]", "JSON object");
	refused("\"list\"", "JSON object");
	refused("null", "JSON");
	refused("{}", "missing 'op'");
	refused("{\"op\":7}", "unknown 'op'");
	refused("{\"op\":\"attack\"}", "unknown 'op'");
	refused("{\"op\":\"list\",\"pid\":1}", "unexpected key 'pid'");
	refused("{\"op\":\"attach\",\"pid\":1,\"pdi\":2}", "unexpected key 'pdi'");
	/* A key with control characters is refused before its name is looked
	 * at (the reason stays one line; found by the protocol fuzz target). */
	refused("{\"op\":\"list\",\"a\\nb\\u001b[2J\":1}", "control character");
	refused("{\"op\":\"list\",\"x\":{\"a\":{\"b\":{\"c\":{}}}}}", "malformed JSON");
	/* invalid UTF-8 */
	refused("{\"op\":\"attach\",\"pid\":1,\"name\":\"\xff\xfe\"}", "malformed JSON");
}
END_TEST

START_TEST(test_nul_byte)
{
	static const char s[] = "{\"op\":\"list\"}\0garbage";
	struct stoke_request req;
	char err[128];

	ck_assert_int_eq(stoke_request_parse(s, sizeof(s) - 1, &req, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "NUL"));
}
END_TEST

/* issue #12: "status\u0000" was accepted as "status" (json-c decodes the
 * escape and the string is then read as a C string). Every control
 * character, escaped or raw, in a key or a value, is refused. */
START_TEST(test_control_chars)
{
	refused("{\"op\":\"status\\u0000\"}", "control character");
	refused("{\"op\":\"status\\u0000junk\"}", "control character");
	refused("{\"op\":\"list\\u001f\"}", "control character");
	refused("{\"op\":\"list\\u007F\"}", "control character");
	refused("{\"op\":\"attach\",\"pid\":1,\"name\":\"a\\nb\"}", "control character");
	refused("{\"op\":\"attach\",\"pid\":1,\"event\":\"cpu-clock\\u0000\"}",
		"control character");
	refused("{\"op\\u0000\":\"list\"}", "control character");
	refused("{\"op\":\"li\tst\"}", "control character");
	refused("{\"op\":\"li\x01st\"}", "control character");
	/* An escaped backslash followed by u0000 is a plain string, and other
	 * escapes pass through to the field's own check. */
	refused("{\"op\":\"attach\",\"pid\":1,\"name\":\"a\\\\u0000\"}", "'name' must be");
	{
		struct stoke_request req;
		char err[256];

		ck_assert_int_eq(parse("{\"op\":\"attach\",\"pid\":1,\"name\":\"a\\u0041\"}",
				       &req, err, sizeof(err)),
				 0);
		ck_assert_str_eq(req.name, "aA");
	}
}
END_TEST

START_TEST(test_types_and_ranges)
{
	refused("{\"op\":\"attach\"}", "needs 'pid'");
	refused("{\"op\":\"attach\",\"pid\":\"12\"}", "'pid' must be an integer");
	refused("{\"op\":\"attach\",\"pid\":1.5}", "'pid' must be an integer");
	refused("{\"op\":\"attach\",\"pid\":0}", "'pid' must be between");
	refused("{\"op\":\"attach\",\"pid\":-4}", "'pid' must be between");
	refused("{\"op\":\"attach\",\"pid\":99999999999999999999999}", "'pid' must be between");
	refused("{\"op\":\"attach\",\"pid\":18446744073709551615}", "'pid' must be between");
	refused("{\"op\":\"attach\",\"pid\":1,\"freq\":0}", "'freq' must be between");
	refused("{\"op\":\"attach\",\"pid\":1,\"freq\":100001}", "'freq' must be between");
	refused("{\"op\":\"attach\",\"pid\":1,\"event\":\"instructions\"}", "'event' must be");
	refused("{\"op\":\"attach\",\"pid\":1,\"call_graph\":\"lbr\"}", "'call_graph' must be");
	refused("{\"op\":\"attach\",\"pid\":1,\"call_graph\":\"dwarf,12\"}", "'call_graph' must be");
	refused("{\"op\":\"attach\",\"pid\":1,\"call_graph\":\"dwarf,70000\"}", "'call_graph' must be");
	refused("{\"op\":\"attach\",\"pid\":1,\"duration\":-1}", "'duration' must be between");
	refused("{\"op\":\"attach\",\"pid\":1,\"duration\":\"5\"}", "'duration' must be a number");
	refused("{\"op\":\"attach\",\"pid\":1,\"duration\":1e400}", "'duration' must be between");
	refused("{\"op\":\"attach\",\"pid\":1,\"per_thread\":1}", "must be true or false");
	refused("{\"op\":\"attach\",\"pid\":1,\"continuous\":true}", "needs 'rotate'");
	refused("{\"op\":\"attach\",\"pid\":1,\"rotate\":5}", "need \"continuous\"");
	refused("{\"op\":\"attach\",\"pid\":1,\"keep\":5}", "need \"continuous\"");
	refused("{\"op\":\"attach\",\"pid\":1,\"continuous\":true,\"rotate\":0.5}",
		"'rotate' must be between");
	refused("{\"op\":\"attach\",\"pid\":1,\"continuous\":true,\"rotate\":1,\"keep\":-1}",
		"'keep' must be between");
	refused("{\"op\":\"attach\",\"pid\":1,\"name\":\"../etc\"}", "'name' must be");
	refused("{\"op\":\"attach\",\"pid\":1,\"name\":\"a/b\"}", "'name' must be");
	refused("{\"op\":\"attach\",\"pid\":1,\"name\":\".hidden\"}", "'name' must be");
	refused("{\"op\":\"attach\",\"pid\":1,\"name\":\"\"}", "'name' must be");
	refused("{\"op\":\"attach\",\"pid\":1,\"name\":\"a b\"}", "'name' must be");
	refused("{\"op\":\"attach\",\"pid\":1,\"name\":\"a\\u0000b\"}", "control character");
	refused("{\"op\":\"attach\",\"pid\":1,\"name\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxx\"}",
		"'name' must be");
	refused("{\"op\":\"detach\"}", "needs 'session'");
	refused("{\"op\":\"snapshot\"}", "needs 'session'");
	refused("{\"op\":\"detach\",\"session\":0}", "'session' must be between");
	refused("{\"op\":\"detach\",\"session\":\"1\"}", "'session' must be an integer");
}
END_TEST

START_TEST(test_size_limit)
{
	char *buf = malloc(STOKE_PROTO_MAX_REQUEST + 2);
	struct stoke_request req;
	char err[128];
	size_t head, n;

	ck_assert_ptr_nonnull(buf);
	/* Exactly at the limit (padding spaces, then the newline): fine. */
	head = (size_t)sprintf(buf, "{\"op\":\"list\"}");
	memset(buf + head, ' ', STOKE_PROTO_MAX_REQUEST - head - 1);
	buf[STOKE_PROTO_MAX_REQUEST - 1] = '\n';
	ck_assert_int_eq(stoke_request_parse(buf, STOKE_PROTO_MAX_REQUEST, &req, err, sizeof(err)),
			 0);
	/* One byte more: refused before any parsing. */
	n = STOKE_PROTO_MAX_REQUEST + 1;
	buf[n - 1] = '\n';
	buf[n - 2] = ' ';
	ck_assert_int_eq(stoke_request_parse(buf, n, &req, err, sizeof(err)), -E2BIG);
	ck_assert_ptr_nonnull(strstr(err, "longer than"));
	free(buf);
}
END_TEST

START_TEST(test_err_buffer)
{
	struct stoke_request req;
	char err[8];

	/* A short buffer truncates; no buffer is allowed. */
	ck_assert_int_eq(parse("{", &req, err, sizeof(err)), -EINVAL);
	ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
	ck_assert_int_eq(parse("{", &req, NULL, 0), -EINVAL);
}
END_TEST

START_TEST(test_format_roundtrip)
{
	struct stoke_request a, b;
	char err[256];
	char *line = NULL;

	stoke_request_init(&a);
	a.op = STOKE_OP_ATTACH;
	a.pid = 4321;
	a.freq = 199;
	a.event = STOKE_EVENT_CYCLES;
	a.duration = 12.25;
	a.continuous = true;
	a.rotate = 2;
	a.keep = 5;
	a.per_thread = true;
	a.no_kernel = true;
	strcpy(a.name, "api");
	ck_assert_int_eq(stoke_request_format(&a, &line), 0);
	ck_assert_ptr_nonnull(strchr(line, '\n'));
	ck_assert_ptr_eq(strchr(line, '\n'), line + strlen(line) - 1);
	ck_assert_int_eq(parse(line, &b, err, sizeof(err)), 0);
	ck_assert_mem_eq(&a, &b, sizeof(a));
	free(line);

	stoke_request_init(&a);
	a.op = STOKE_OP_DETACH;
	a.session = 77;
	a.discard = true;
	ck_assert_int_eq(stoke_request_format(&a, &line), 0);
	ck_assert_int_eq(parse(line, &b, err, sizeof(err)), 0);
	ck_assert_mem_eq(&a, &b, sizeof(a));
	free(line);
}
END_TEST

static json_object *parse_reply(const char *line)
{
	json_object *o;
	size_t n = strlen(line);

	ck_assert_uint_gt(n, 1);
	ck_assert_int_eq(line[n - 1], '\n');
	ck_assert_ptr_null(memchr(line, '\n', n - 1)); /* one line */
	o = json_tokener_parse(line);
	ck_assert_ptr_nonnull(o);
	return o;
}

START_TEST(test_replies)
{
	struct stoke_session_info infos[2] = {
		{.id = 1,
		 .pid = 10,
		 .uid = 1000,
		 .comm = "a\"b\n",
		 .state = "running",
		 .mode = "continuous",
		 .event = "cpu-clock",
		 .freq = 999,
		 .rotate = 1,
		 .keep = 3,
		 .samples = 5,
		 .last_run = "2024-01-01T00-00-00_a"},
		{.id = 2, .pid = 11, .state = "ended", .mode = "oneshot"},
	};
	struct stoke_daemon_info di = {
		.version = "0.1.0", .pid = 5, .sessions = 1, .max_sessions = 64};
	json_object *o, *v;
	char *line;

	line = stoke_reply_error(-EPERM, "permission denied: \"x\"\nmore");
	o = parse_reply(line);
	ck_assert(json_object_object_get_ex(o, "ok", &v) && !json_object_get_boolean(v));
	ck_assert(json_object_object_get_ex(o, "error", &v));
	ck_assert_str_eq(json_object_get_string(v), "EPERM");
	ck_assert(json_object_object_get_ex(o, "message", &v));
	ck_assert_str_eq(json_object_get_string(v), "permission denied: \"x\"\nmore");
	json_object_put(o);
	free(line);

	line = stoke_reply_list(infos, 2);
	o = parse_reply(line);
	ck_assert(json_object_object_get_ex(o, "sessions", &v));
	ck_assert_uint_eq(json_object_array_length(v), 2);
	v = json_object_array_get_idx(v, 0);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(v, "comm")), "a\"b\n");
	ck_assert_int_eq(json_object_get_int(json_object_object_get(v, "keep")), 3);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(v, "last_run")),
			 "2024-01-01T00-00-00_a");
	json_object_put(o);
	free(line);

	line = stoke_reply_list(NULL, 0);
	o = parse_reply(line);
	ck_assert(json_object_object_get_ex(o, "sessions", &v));
	ck_assert_uint_eq(json_object_array_length(v), 0);
	json_object_put(o);
	free(line);

	line = stoke_reply_session(&infos[1], "run-1");
	o = parse_reply(line);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "run")), "run-1");
	v = json_object_object_get(o, "session");
	ck_assert_int_eq(json_object_get_int(json_object_object_get(v, "id")), 2);
	ck_assert(!json_object_object_get_ex(v, "rotate_s", NULL));
	json_object_put(o);
	free(line);

	line = stoke_reply_daemon(&di);
	o = parse_reply(line);
	v = json_object_object_get(o, "daemon");
	ck_assert_int_eq(json_object_get_int(json_object_object_get(v, "max_sessions")), 64);
	json_object_put(o);
	free(line);

	line = stoke_reply_ok();
	ck_assert_str_eq(line, "{\"ok\":true}\n");
	free(line);
}
END_TEST

START_TEST(test_errno_names)
{
	ck_assert_str_eq(stoke_errno_name(-EPERM), "EPERM");
	ck_assert_str_eq(stoke_errno_name(ESRCH), "ESRCH");
	ck_assert_str_eq(stoke_errno_name(-E2BIG), "E2BIG");
	ck_assert_str_eq(stoke_errno_name(-12345), "EIO");
	ck_assert_str_eq(stoke_op_name(STOKE_OP_SNAPSHOT), "snapshot");
	ck_assert_str_eq(stoke_op_name((enum stoke_op)99), "none");
}
END_TEST

/* Deterministic xorshift so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

START_TEST(test_mutations_never_crash)
{
	static const char seed[] =
		"{\"op\":\"attach\",\"pid\":1234,\"freq\":499,\"event\":\"cycles\",\"duration\":"
		"2.5,\"continuous\":true,\"rotate\":1,\"keep\":3,\"name\":\"web\"}";
	static const char alphabet[] = "{}[]\":,.-+0123456789eE\\ \n\tatrufnl\x80\xff";
	char buf[sizeof(seed) + 64];
	unsigned accepted = 0, refused_n = 0;

	for (int iter = 0; iter < 20000; iter++) {
		struct stoke_request req;
		char err[256];
		size_t n = sizeof(seed) - 1;
		int r, edits = 1 + (int)(rnd() % 4);

		memcpy(buf, seed, n);
		for (int e = 0; e < edits; e++) {
			size_t pos = (size_t)(rnd() % n);

			switch (rnd() % 3) {
			case 0: /* replace */
				buf[pos] = alphabet[rnd() % (sizeof(alphabet) - 1)];
				break;
			case 1: /* delete */
				memmove(buf + pos, buf + pos + 1, n - pos - 1);
				n--;
				break;
			default: /* insert */
				if (n + 1 < sizeof(buf)) {
					memmove(buf + pos + 1, buf + pos, n - pos);
					buf[pos] = alphabet[rnd() % (sizeof(alphabet) - 1)];
					n++;
				}
			}
		}
		r = stoke_request_parse(buf, n, &req, err, sizeof(err));
		if (r == 0) {
			accepted++;
			ck_assert_int_ne(req.op, STOKE_OP_NONE);
		} else {
			refused_n++;
			ck_assert_int_eq(r, -EINVAL);
			ck_assert_uint_gt(strlen(err), 0);
		}
	}
	/* Both outcomes must occur, or the mutator tests nothing. */
	ck_assert_uint_gt(accepted, 0);
	ck_assert_uint_gt(refused_n, 1000);
}
END_TEST

START_TEST(test_random_bytes_never_crash)
{
	char buf[512];

	for (int iter = 0; iter < 5000; iter++) {
		struct stoke_request req;
		char err[64];
		size_t n = (size_t)(rnd() % sizeof(buf));

		for (size_t i = 0; i < n; i++)
			buf[i] = (char)rnd();
		ck_assert_int_lt(stoke_request_parse(buf, n, &req, err, sizeof(err)), 0);
	}
}
END_TEST

static Suite *protocol_suite(void)
{
	Suite *s = suite_create("protocol");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_attach_full);
	tcase_add_test(tc, test_callgraph_modes);
	tcase_add_test(tc, test_attach_defaults);
	tcase_add_test(tc, test_event_names);
	tcase_add_test(tc, test_other_ops);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_nul_byte);
	tcase_add_test(tc, test_control_chars);
	tcase_add_test(tc, test_types_and_ranges);
	tcase_add_test(tc, test_size_limit);
	tcase_add_test(tc, test_err_buffer);
	tcase_add_test(tc, test_format_roundtrip);
	tcase_add_test(tc, test_replies);
	tcase_add_test(tc, test_errno_names);
	tcase_add_test(tc, test_mutations_never_crash);
	tcase_add_test(tc, test_random_bytes_never_crash);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(protocol_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
