/*
 * The pprof writer and reader (formats/pprof.h): a golden file of the
 * uncompressed profile.proto for the synthetic profile; the exact round
 * trip that `stoke report` relies on (write, read back, write again: the
 * same bytes, in pprof and in every other format); gzip framing; and the
 * reader's refusal of malformed input with a reason instead of a crash.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "pprof.h"
#include "synth.h"

START_TEST(golden_encoding)
{
	struct stoke_profile *p = synth_profile();
	uint8_t *buf = NULL;
	size_t len = 0;

	ck_assert_int_eq(stoke_pprof_encode(p, &buf, &len), 0);
	synth_golden("synth.pb", (const char *)buf, len);
	free(buf);
	stoke_profile_free(p);
}
END_TEST

static struct stoke_profile *read_back(const char *buf, size_t len)
{
	struct stoke_profile *q = NULL;
	const char *err = NULL;
	FILE *in = fmemopen((void *)buf, len, "rb");
	int r;

	ck_assert_ptr_nonnull(in);
	r = stoke_pprof_read(in, &q, &err);
	ck_assert_msg(r == 0, "read failed: %s", err ? err : "?");
	fclose(in);
	return q;
}

/* Every format of the read-back profile equals the original's. */
START_TEST(round_trip_every_format)
{
	struct stoke_profile *p = synth_profile(), *q;
	struct stoke_output_opts opts;
	char *gz;
	size_t gzlen;

	stoke_output_opts_init(&opts);
	gz = synth_render(p, STOKE_FORMAT_PPROF, &opts, &gzlen);
	ck_assert_uint_ge(gzlen, 2);
	ck_assert_int_eq((unsigned char)gz[0], 0x1f);
	ck_assert_int_eq((unsigned char)gz[1], 0x8b);
	q = read_back(gz, gzlen);
	ck_assert_uint_eq(stoke_profile_total(q), stoke_profile_total(p));
	for (int f = 0; f < STOKE_FORMAT_COUNT; f++) {
		for (int per_thread = 0; per_thread < 2; per_thread++) {
			size_t la, lb;
			char *a, *b;
			FILE *out;
			int ra, rb;

			opts.per_thread = per_thread;
			a = NULL, b = NULL;
			out = open_memstream(&a, &la);
			ra = stoke_output_write_file(p, (enum stoke_format)f, &opts, out);
			fclose(out);
			out = open_memstream(&b, &lb);
			rb = stoke_output_write_file(q, (enum stoke_format)f, &opts, out);
			fclose(out);
			ck_assert_int_eq(ra, rb);
			if (ra == -EOPNOTSUPP) {
				free(a);
				free(b);
				continue;
			}
			ck_assert_int_eq(ra, 0);
			ck_assert_msg(la == lb && memcmp(a, b, la) == 0, "format %s differs",
				      stoke_format_name((enum stoke_format)f));
			free(a);
			free(b);
		}
	}
	free(gz);
	stoke_profile_free(q);
	stoke_profile_free(p);
}
END_TEST

/* The model read back holds what the writer was given. */
START_TEST(round_trip_model)
{
	struct stoke_profile *p = synth_profile(), *q;
	const struct stoke_psample *sa, *sb;
	const struct stoke_pthread *ta, *tb;
	const struct stoke_pmeta *ma, *mb;
	size_t na, nb;
	char *gz;
	size_t gzlen;

	gz = synth_render(p, STOKE_FORMAT_PPROF, NULL, &gzlen);
	q = read_back(gz, gzlen);
	ck_assert_uint_eq(stoke_profile_nstrings(q), stoke_profile_nstrings(p));
	for (uint32_t i = 0; i < stoke_profile_nstrings(p); i++)
		ck_assert_str_eq(stoke_profile_string(q, i), stoke_profile_string(p, i));
	ck_assert_uint_eq(stoke_profile_nframes(q), stoke_profile_nframes(p));
	for (uint32_t i = 1; i <= stoke_profile_nframes(p); i++) {
		const struct stoke_pframe *x = stoke_profile_get_frame(p, i);
		const struct stoke_pframe *y = stoke_profile_get_frame(q, i);

		ck_assert_uint_eq(x->name, y->name);
		ck_assert_uint_eq(x->file, y->file);
		ck_assert_uint_eq(x->line, y->line);
		ck_assert_uint_eq(x->module, y->module);
		ck_assert_uint_eq(x->offset, y->offset);
		ck_assert_uint_eq(x->kind, y->kind);
		ck_assert_int_eq(x->inlined, y->inlined);
	}
	sa = stoke_profile_samples(p, &na);
	sb = stoke_profile_samples(q, &nb);
	ck_assert_uint_eq(na, nb);
	for (size_t i = 0; i < na; i++) {
		uint32_t fa[64], fb[64];
		size_t da = stoke_profile_stack_frames(p, sa[i].stack, fa, 64);
		size_t db = stoke_profile_stack_frames(q, sb[i].stack, fb, 64);

		ck_assert_uint_eq(sa[i].tid, sb[i].tid);
		ck_assert_uint_eq(sa[i].time, sb[i].time);
		ck_assert_uint_eq(sa[i].weight, sb[i].weight);
		ck_assert_uint_eq(da, db);
		ck_assert_int_eq(memcmp(fa, fb, da * sizeof(*fa)), 0);
	}
	ta = stoke_profile_threads(p, &na);
	tb = stoke_profile_threads(q, &nb);
	ck_assert_uint_eq(na, nb);
	for (size_t i = 0; i < na; i++) {
		ck_assert_uint_eq(ta[i].pid, tb[i].pid);
		ck_assert_uint_eq(ta[i].tid, tb[i].tid);
		ck_assert_uint_eq(ta[i].samples, tb[i].samples);
		ck_assert_str_eq(stoke_profile_string(p, ta[i].name),
				 stoke_profile_string(q, tb[i].name));
	}
	ma = stoke_profile_cmeta(p);
	mb = stoke_profile_cmeta(q);
	ck_assert_int_eq(memcmp(ma, mb, sizeof(*ma)), 0);
	free(gz);
	stoke_profile_free(q);
	stoke_profile_free(p);
}
END_TEST

static int decode_err(const void *buf, size_t len, const char **err)
{
	struct stoke_profile *q = NULL;
	int r = stoke_pprof_decode(buf, len, &q, err);

	stoke_profile_free(q);
	return r;
}

START_TEST(malformed_input)
{
	struct stoke_profile *p = synth_profile();
	const char *err = NULL;
	uint8_t *buf = NULL, *copy;
	size_t len = 0;

	/* truncated varint, bad wire type, empty, missing "" */
	ck_assert_int_eq(decode_err("\x08\xff", 2, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(decode_err("\x0f", 1, &err), -EINVAL);
	ck_assert_int_eq(decode_err("", 0, &err), -EINVAL);
	ck_assert_int_eq(decode_err("\x32\x01x", 3, &err), -EINVAL);
	/* every truncation of a valid file fails cleanly or succeeds */
	ck_assert_int_eq(stoke_pprof_encode(p, &buf, &len), 0);
	for (size_t cut = 0; cut < len; cut += 7) {
		copy = malloc(cut + 1);
		memcpy(copy, buf, cut);
		(void)decode_err(copy, cut, &err);
		free(copy);
	}
	/* flipped bytes never crash */
	copy = malloc(len);
	for (size_t i = 0; i < len; i += 3) {
		memcpy(copy, buf, len);
		copy[i] ^= 0x5a;
		(void)decode_err(copy, len, &err);
	}
	free(copy);
	free(buf);
	stoke_profile_free(p);
}
END_TEST

START_TEST(not_gzip_not_proto)
{
	struct stoke_profile *q = NULL;
	const char *err = NULL;
	const char text[] = "main;run 12\n";
	const unsigned char badgz[] = { 0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02 };
	FILE *in;

	in = fmemopen((void *)text, sizeof(text) - 1, "rb");
	ck_assert_int_eq(stoke_pprof_read(in, &q, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	fclose(in);
	in = fmemopen((void *)badgz, sizeof(badgz), "rb");
	ck_assert_int_eq(stoke_pprof_read(in, &q, &err), -EINVAL);
	ck_assert_str_eq(err, "corrupt or truncated gzip data");
	fclose(in);
}
END_TEST

static Suite *pprof_suite(void)
{
	Suite *s = suite_create("pprof");
	TCase *tc = tcase_create("pprof");

	tcase_add_test(tc, golden_encoding);
	tcase_add_test(tc, round_trip_every_format);
	tcase_add_test(tc, round_trip_model);
	tcase_add_test(tc, malformed_input);
	tcase_add_test(tc, not_gzip_not_proto);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pprof_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
