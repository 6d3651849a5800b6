/*
 * Decoder and encoder for perf_event records.
 *
 * The decoder treats its input as hostile: every read goes through a bounded
 * cursor over [buf, buf + header.size), lengths taken from the record are
 * checked by division (never by multiplying a count that could overflow), and
 * strings must be NUL-terminated inside the record. Scalars are read with
 * memcpy, so an unaligned buffer is safe to decode; the borrowed u64 arrays
 * (callchain, regs) are only dereferenceable when buf is 8-byte aligned, as
 * records in the ring and malloc'd copies always are.
 *
 * PERF_RECORD_SAMPLE layouts are supported up to STACK_USER. Bits that place
 * data we cannot size before our fields (READ needs read_format, BRANCH_STACK
 * needs branch_sample_type, RAW we do not use) make the sample undecodable:
 * decode returns -EBADMSG and encode -EINVAL. Bits whose data comes after
 * STACK_USER (WEIGHT, DATA_SRC, ...) are ignored by the decoder, since nothing
 * we read depends on them; the encoder rejects them.
 *
 * For other records with sample_id_all, the struct sample_id trailer sits at
 * the end of the record; its size follows from sample_type alone, so it is
 * decoded from the end and the body is bounded to what precedes it.
 */
#include "sampler/perf/record.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <string.h>

#define SAMPLE_UNSUPPORTED \
	(PERF_SAMPLE_READ | PERF_SAMPLE_RAW | PERF_SAMPLE_BRANCH_STACK)
#define SAMPLE_ENCODABLE                                                      \
	(PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID |          \
	 PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR | PERF_SAMPLE_ID |               \
	 PERF_SAMPLE_STREAM_ID | PERF_SAMPLE_CPU | PERF_SAMPLE_PERIOD |       \
	 PERF_SAMPLE_CALLCHAIN | PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER)
#define SAMPLE_ID_BITS                                                        \
	(PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_ID |                \
	 PERF_SAMPLE_STREAM_ID | PERF_SAMPLE_CPU | PERF_SAMPLE_IDENTIFIER)

/* header.size is a u16 and records are u64-aligned. */
#define RECORD_MAX_SIZE 65528u

/* ---- bounded reader ---------------------------------------------------- */

struct cursor {
	const uint8_t *p;
	const uint8_t *end;
};

static size_t cur_left(const struct cursor *c)
{
	return (size_t)(c->end - c->p);
}

static int cur_skip(struct cursor *c, size_t n)
{
	if (n > cur_left(c))
		return -EBADMSG;
	c->p += n;
	return 0;
}

static int cur_u64(struct cursor *c, uint64_t *v)
{
	if (cur_left(c) < sizeof(*v))
		return -EBADMSG;
	memcpy(v, c->p, sizeof(*v));
	c->p += sizeof(*v);
	return 0;
}

static int cur_u32(struct cursor *c, uint32_t *v)
{
	if (cur_left(c) < sizeof(*v))
		return -EBADMSG;
	memcpy(v, c->p, sizeof(*v));
	c->p += sizeof(*v);
	return 0;
}

/* Borrow an array of n u64s; n comes from the record, so bound it by
 * division: n * 8 could wrap. */
static int cur_u64_array(struct cursor *c, uint64_t n, const uint64_t **ret)
{
	if (n > cur_left(c) / sizeof(uint64_t))
		return -EBADMSG;
	*ret = (const uint64_t *)(const void *)c->p;
	c->p += n * sizeof(uint64_t);
	return 0;
}

/* A string that must end with a NUL before the end of the body; the rest of
 * the body is alignment padding. */
static int cur_string(struct cursor *c, const char **ret)
{
	if (!memchr(c->p, '\0', cur_left(c)))
		return -EBADMSG;
	*ret = (const char *)c->p;
	c->p = c->end;
	return 0;
}

/* ---- decoder ----------------------------------------------------------- */

static int decode_sample_ids(const struct stoke_record_format *fmt,
			     struct cursor *c, struct stoke_perf_sample *s)
{
	uint64_t skip, st = fmt->sample_type;
	int r = 0;

	if (st & PERF_SAMPLE_IDENTIFIER)
		r = cur_u64(c, &skip);
	if (!r && (st & PERF_SAMPLE_IP))
		r = cur_u64(c, &s->ip);
	if (!r && (st & PERF_SAMPLE_TID)) {
		r = cur_u32(c, &s->pid);
		if (!r)
			r = cur_u32(c, &s->tid);
	}
	if (!r && (st & PERF_SAMPLE_TIME))
		r = cur_u64(c, &s->time);
	if (!r && (st & PERF_SAMPLE_ADDR))
		r = cur_u64(c, &skip);
	if (!r && (st & PERF_SAMPLE_ID))
		r = cur_u64(c, &skip);
	if (!r && (st & PERF_SAMPLE_STREAM_ID))
		r = cur_u64(c, &skip);
	if (!r && (st & PERF_SAMPLE_CPU)) {
		r = cur_u32(c, &s->cpu);
		if (!r)
			r = cur_skip(c, sizeof(uint32_t)); /* res */
	}
	if (!r && (st & PERF_SAMPLE_PERIOD))
		r = cur_u64(c, &s->period);
	return r;
}

static int decode_regs(const struct stoke_record_format *fmt, struct cursor *c,
		       struct stoke_perf_sample *s)
{
	int r;

	r = cur_u64(c, &s->regs_abi);
	if (r < 0)
		return r;
	/* With no user context (a kernel thread) the kernel writes only abi. */
	if (s->regs_abi == PERF_SAMPLE_REGS_ABI_NONE)
		return 0;
	s->nr_regs = (uint32_t)__builtin_popcountll(fmt->regs_user_mask);
	return cur_u64_array(c, s->nr_regs, &s->regs);
}

static int decode_stack(struct cursor *c, struct stoke_perf_sample *s)
{
	int r;

	r = cur_u64(c, &s->stack_size);
	if (r < 0)
		return r;
	/* A zero size is written alone, without data or dyn_size. */
	if (s->stack_size == 0)
		return 0;
	if (s->stack_size > cur_left(c))
		return -EBADMSG;
	s->stack = c->p;
	c->p += s->stack_size;
	r = cur_u64(c, &s->dyn_size);
	if (r < 0)
		return r;
	return s->dyn_size <= s->stack_size ? 0 : -EBADMSG;
}

static int decode_sample(const struct stoke_record_format *fmt,
			 struct cursor *c, struct stoke_perf_sample *s)
{
	uint64_t st = fmt->sample_type;
	int r;

	if (st & SAMPLE_UNSUPPORTED)
		return -EBADMSG;
	r = decode_sample_ids(fmt, c, s);
	if (!r && (st & PERF_SAMPLE_CALLCHAIN)) {
		r = cur_u64(c, &s->nr);
		if (!r)
			r = cur_u64_array(c, s->nr, &s->callchain);
	}
	if (!r && (st & PERF_SAMPLE_REGS_USER))
		r = decode_regs(fmt, c, s);
	if (!r && (st & PERF_SAMPLE_STACK_USER))
		r = decode_stack(c, s);
	return r;
}

static size_t sample_id_size(const struct stoke_record_format *fmt)
{
	if (!fmt->sample_id_all)
		return 0;
	return 8 * (size_t)__builtin_popcountll(fmt->sample_type &
						 SAMPLE_ID_BITS);
}

/* The trailer fields in the order struct sample_id lays them out. */
static int decode_sample_id(const struct stoke_record_format *fmt,
			    struct cursor *c, struct stoke_sample_id *id)
{
	uint64_t st = fmt->sample_type, skip;
	int r = 0;

	if (!fmt->sample_id_all)
		return 0;
	if (st & PERF_SAMPLE_TID) {
		r = cur_u32(c, &id->pid);
		if (!r)
			r = cur_u32(c, &id->tid);
		id->has_tid = true;
	}
	if (!r && (st & PERF_SAMPLE_TIME)) {
		r = cur_u64(c, &id->time);
		id->has_time = true;
	}
	if (!r && (st & PERF_SAMPLE_ID))
		r = cur_u64(c, &skip);
	if (!r && (st & PERF_SAMPLE_STREAM_ID))
		r = cur_u64(c, &skip);
	if (!r && (st & PERF_SAMPLE_CPU)) {
		r = cur_u32(c, &id->cpu);
		if (!r)
			r = cur_skip(c, sizeof(uint32_t));
		id->has_cpu = true;
	}
	if (!r && (st & PERF_SAMPLE_IDENTIFIER))
		r = cur_u64(c, &skip);
	return r;
}

static bool misc_is_kernel(uint16_t misc)
{
	return (misc & PERF_RECORD_MISC_CPUMODE_MASK) == PERF_RECORD_MISC_KERNEL;
}

static int decode_mmap2_ident(struct cursor *c, uint16_t misc,
			      struct stoke_mmap *m)
{
	int r;

	if (!(misc & PERF_RECORD_MISC_MMAP_BUILD_ID)) {
		r = cur_u32(c, &m->maj);
		if (!r)
			r = cur_u32(c, &m->min);
		if (!r)
			r = cur_u64(c, &m->ino);
		if (!r)
			r = cur_u64(c, &m->ino_generation);
		return r;
	}
	/* u8 size, u8 + u16 reserved, u8 build_id[20]: 24 bytes, as the
	 * maj/min/ino/ino_generation variant it overlays. */
	if (cur_left(c) < 24 || c->p[0] > sizeof(m->build_id))
		return -EBADMSG;
	m->has_build_id = true;
	m->build_id_size = c->p[0];
	memcpy(m->build_id, c->p + 4, sizeof(m->build_id));
	c->p += 24;
	return 0;
}

static int decode_mmap(struct cursor *c, uint32_t type, uint16_t misc,
		       struct stoke_mmap *m)
{
	int r;

	r = cur_u32(c, &m->pid);
	if (!r)
		r = cur_u32(c, &m->tid);
	if (!r)
		r = cur_u64(c, &m->addr);
	if (!r)
		r = cur_u64(c, &m->len);
	if (!r)
		r = cur_u64(c, &m->pgoff);
	if (!r && type == PERF_RECORD_MMAP2) {
		m->is_mmap2 = true;
		r = decode_mmap2_ident(c, misc, m);
		if (!r)
			r = cur_u32(c, &m->prot);
		if (!r)
			r = cur_u32(c, &m->flags);
	}
	m->kernel = misc_is_kernel(misc);
	return r ? r : cur_string(c, &m->filename);
}

static int decode_comm(struct cursor *c, uint16_t misc, struct stoke_comm *cm)
{
	int r;

	r = cur_u32(c, &cm->pid);
	if (!r)
		r = cur_u32(c, &cm->tid);
	cm->exec = misc & PERF_RECORD_MISC_COMM_EXEC;
	return r ? r : cur_string(c, &cm->comm);
}

static int decode_task(struct cursor *c, struct stoke_task *t)
{
	int r;

	r = cur_u32(c, &t->pid);
	if (!r)
		r = cur_u32(c, &t->ppid);
	if (!r)
		r = cur_u32(c, &t->tid);
	if (!r)
		r = cur_u32(c, &t->ptid);
	return r ? r : cur_u64(c, &t->time);
}

static int decode_lost(struct cursor *c, struct stoke_lost *l)
{
	int r = cur_u64(c, &l->id);

	return r ? r : cur_u64(c, &l->lost);
}

static int decode_throttle(struct cursor *c, struct stoke_throttle *t)
{
	int r = cur_u64(c, &t->time);

	if (!r)
		r = cur_u64(c, &t->id);
	return r ? r : cur_u64(c, &t->stream_id);
}

static enum stoke_record_type map_type(uint32_t raw)
{
	switch (raw) {
	case PERF_RECORD_SAMPLE:
		return STOKE_REC_SAMPLE;
	case PERF_RECORD_MMAP:
	case PERF_RECORD_MMAP2:
		return STOKE_REC_MMAP;
	case PERF_RECORD_COMM:
		return STOKE_REC_COMM;
	case PERF_RECORD_FORK:
		return STOKE_REC_FORK;
	case PERF_RECORD_EXIT:
		return STOKE_REC_EXIT;
	case PERF_RECORD_LOST:
		return STOKE_REC_LOST;
	case PERF_RECORD_THROTTLE:
		return STOKE_REC_THROTTLE;
	case PERF_RECORD_UNTHROTTLE:
		return STOKE_REC_UNTHROTTLE;
	default:
		return STOKE_REC_OTHER;
	}
}

/* Everything but samples: body, then the sample_id trailer at the end. */
static int decode_body(const struct stoke_record_format *fmt,
		       struct cursor *c, struct stoke_perf_record *rec)
{
	size_t tsz = sample_id_size(fmt);
	struct cursor trailer;
	int r;

	if (tsz > cur_left(c))
		return -EBADMSG;
	trailer = (struct cursor){ c->end - tsz, c->end };
	c->end -= tsz;
	r = decode_sample_id(fmt, &trailer, &rec->id);
	if (r < 0)
		return r;

	switch (rec->type) {
	case STOKE_REC_MMAP:
		return decode_mmap(c, rec->raw_type, rec->misc, &rec->mmap);
	case STOKE_REC_COMM:
		return decode_comm(c, rec->misc, &rec->comm);
	case STOKE_REC_FORK:
	case STOKE_REC_EXIT:
		return decode_task(c, &rec->task);
	case STOKE_REC_LOST:
		return decode_lost(c, &rec->lost);
	case STOKE_REC_THROTTLE:
	case STOKE_REC_UNTHROTTLE:
		return decode_throttle(c, &rec->throttle);
	default:
		return 0;
	}
}

int stoke_record_decode(const struct stoke_record_format *fmt, const void *buf,
			size_t len, struct stoke_perf_record *ret)
{
	struct perf_event_header hdr;
	struct stoke_perf_record rec = { 0 };
	struct cursor c;
	int r;

	if (!fmt || !buf || !ret || len < sizeof(hdr))
		return -EBADMSG;
	memcpy(&hdr, buf, sizeof(hdr));
	/* The kernel always emits u64-aligned sizes; anything else would also
	 * misalign every record after it in the ring. */
	if (hdr.size < sizeof(hdr) || hdr.size > len || hdr.size % 8)
		return -EBADMSG;

	c.p = (const uint8_t *)buf + sizeof(hdr);
	c.end = (const uint8_t *)buf + hdr.size;
	rec.raw_type = hdr.type;
	rec.misc = hdr.misc;
	rec.type = map_type(hdr.type);
	if (rec.type == STOKE_REC_SAMPLE)
		r = decode_sample(fmt, &c, &rec.sample);
	else
		r = decode_body(fmt, &c, &rec);
	if (r < 0)
		return r;
	*ret = rec;
	return 0;
}

/* ---- encoder ----------------------------------------------------------- */

/* Keeps counting past cap so the caller learns the full size; writes only
 * what fits. */
struct writer {
	uint8_t *buf;
	size_t cap;
	size_t off;
};

static void put_bytes(struct writer *w, const void *src, size_t n)
{
	if (w->off <= w->cap && n <= w->cap - w->off) {
		if (src)
			memcpy(w->buf + w->off, src, n);
		else
			memset(w->buf + w->off, 0, n);
	}
	w->off += n;
}

static void put_u64(struct writer *w, uint64_t v)
{
	put_bytes(w, &v, sizeof(v));
}

static void put_u32x2(struct writer *w, uint32_t a, uint32_t b)
{
	put_bytes(w, &a, sizeof(a));
	put_bytes(w, &b, sizeof(b));
}

/* The string, its NUL, and zero padding to the next u64. */
static void put_string(struct writer *w, const char *s)
{
	size_t n = strlen(s) + 1;

	put_bytes(w, s, n);
	put_bytes(w, NULL, (8 - n % 8) % 8);
}

static int encode_sample(const struct stoke_record_format *fmt,
			 const struct stoke_perf_sample *s, struct writer *w)
{
	uint64_t st = fmt->sample_type;
	uint32_t nregs = (uint32_t)__builtin_popcountll(fmt->regs_user_mask);

	if (st & ~SAMPLE_ENCODABLE)
		return -EINVAL;
	if (st & PERF_SAMPLE_IDENTIFIER)
		put_u64(w, 0);
	if (st & PERF_SAMPLE_IP)
		put_u64(w, s->ip);
	if (st & PERF_SAMPLE_TID)
		put_u32x2(w, s->pid, s->tid);
	if (st & PERF_SAMPLE_TIME)
		put_u64(w, s->time);
	if (st & PERF_SAMPLE_ADDR)
		put_u64(w, 0);
	if (st & PERF_SAMPLE_ID)
		put_u64(w, 0);
	if (st & PERF_SAMPLE_STREAM_ID)
		put_u64(w, 0);
	if (st & PERF_SAMPLE_CPU)
		put_u32x2(w, s->cpu, 0);
	if (st & PERF_SAMPLE_PERIOD)
		put_u64(w, s->period);
	if (st & PERF_SAMPLE_CALLCHAIN) {
		if (s->nr > RECORD_MAX_SIZE / 8 || (s->nr && !s->callchain))
			return -EINVAL;
		put_u64(w, s->nr);
		put_bytes(w, s->callchain, s->nr * 8);
	}
	if (st & PERF_SAMPLE_REGS_USER) {
		put_u64(w, s->regs_abi);
		if (s->regs_abi != PERF_SAMPLE_REGS_ABI_NONE) {
			if (s->nr_regs != nregs || (nregs && !s->regs))
				return -EINVAL;
			put_bytes(w, s->regs, (size_t)nregs * 8);
		}
	}
	if (st & PERF_SAMPLE_STACK_USER) {
		if (s->stack_size % 8 || s->stack_size > RECORD_MAX_SIZE ||
		    s->dyn_size > s->stack_size || (s->stack_size && !s->stack))
			return -EINVAL;
		put_u64(w, s->stack_size);
		if (s->stack_size) {
			put_bytes(w, s->stack, s->stack_size);
			put_u64(w, s->dyn_size);
		}
	}
	return 0;
}

static void encode_sample_id(const struct stoke_record_format *fmt,
			     const struct stoke_sample_id *id, struct writer *w)
{
	uint64_t st = fmt->sample_type;

	if (!fmt->sample_id_all)
		return;
	if (st & PERF_SAMPLE_TID)
		put_u32x2(w, id->pid, id->tid);
	if (st & PERF_SAMPLE_TIME)
		put_u64(w, id->time);
	if (st & PERF_SAMPLE_ID)
		put_u64(w, 0);
	if (st & PERF_SAMPLE_STREAM_ID)
		put_u64(w, 0);
	if (st & PERF_SAMPLE_CPU)
		put_u32x2(w, id->cpu, 0);
	if (st & PERF_SAMPLE_IDENTIFIER)
		put_u64(w, 0);
}

static int encode_mmap(const struct stoke_mmap *m, uint16_t *misc,
		       struct writer *w)
{
	uint8_t ident[24] = { 0 };

	if (!m->filename || m->build_id_size > sizeof(m->build_id))
		return -EINVAL;
	*misc &= ~(PERF_RECORD_MISC_CPUMODE_MASK | PERF_RECORD_MISC_MMAP_BUILD_ID);
	*misc |= m->kernel ? PERF_RECORD_MISC_KERNEL : PERF_RECORD_MISC_USER;
	put_u32x2(w, m->pid, m->tid);
	put_u64(w, m->addr);
	put_u64(w, m->len);
	put_u64(w, m->pgoff);
	if (m->has_build_id) {
		*misc |= PERF_RECORD_MISC_MMAP_BUILD_ID;
		ident[0] = m->build_id_size;
		memcpy(ident + 4, m->build_id, sizeof(m->build_id));
		put_bytes(w, ident, sizeof(ident));
	} else {
		put_u32x2(w, m->maj, m->min);
		put_u64(w, m->ino);
		put_u64(w, m->ino_generation);
	}
	put_u32x2(w, m->prot, m->flags);
	put_string(w, m->filename);
	return 0;
}

static int encode_comm(const struct stoke_comm *cm, uint16_t *misc,
		       struct writer *w)
{
	if (!cm->comm)
		return -EINVAL;
	*misc &= ~PERF_RECORD_MISC_COMM_EXEC;
	if (cm->exec)
		*misc |= PERF_RECORD_MISC_COMM_EXEC;
	put_u32x2(w, cm->pid, cm->tid);
	put_string(w, cm->comm);
	return 0;
}

/* Writes the body (after the header) and picks the raw type. */
static int encode_body(const struct stoke_record_format *fmt,
		       const struct stoke_perf_record *rec, uint32_t *type,
		       uint16_t *misc, struct writer *w)
{
	const struct stoke_task *t = &rec->task;
	const struct stoke_throttle *th = &rec->throttle;

	switch (rec->type) {
	case STOKE_REC_SAMPLE:
		*type = PERF_RECORD_SAMPLE;
		return encode_sample(fmt, &rec->sample, w);
	case STOKE_REC_MMAP:
		*type = PERF_RECORD_MMAP2;
		return encode_mmap(&rec->mmap, misc, w);
	case STOKE_REC_COMM:
		*type = PERF_RECORD_COMM;
		return encode_comm(&rec->comm, misc, w);
	case STOKE_REC_FORK:
	case STOKE_REC_EXIT:
		*type = rec->type == STOKE_REC_FORK ? PERF_RECORD_FORK :
						      PERF_RECORD_EXIT;
		put_u32x2(w, t->pid, t->ppid);
		put_u32x2(w, t->tid, t->ptid);
		put_u64(w, t->time);
		return 0;
	case STOKE_REC_LOST:
		*type = PERF_RECORD_LOST;
		put_u64(w, rec->lost.id);
		put_u64(w, rec->lost.lost);
		return 0;
	case STOKE_REC_THROTTLE:
	case STOKE_REC_UNTHROTTLE:
		*type = rec->type == STOKE_REC_THROTTLE ? PERF_RECORD_THROTTLE :
							  PERF_RECORD_UNTHROTTLE;
		put_u64(w, th->time);
		put_u64(w, th->id);
		put_u64(w, th->stream_id);
		return 0;
	default:
		return -EINVAL;
	}
}

int stoke_record_encode(const struct stoke_record_format *fmt,
			const struct stoke_perf_record *rec, void *buf, size_t cap)
{
	struct writer w = { .buf = buf, .cap = buf ? cap : 0 };
	struct perf_event_header hdr = { .misc = rec ? rec->misc : 0 };
	uint32_t type = 0;
	int r;

	if (!fmt || !rec)
		return -EINVAL;
	put_bytes(&w, NULL, sizeof(hdr)); /* filled in below */
	r = encode_body(fmt, rec, &type, &hdr.misc, &w);
	if (r < 0)
		return r;
	if (rec->type != STOKE_REC_SAMPLE)
		encode_sample_id(fmt, &rec->id, &w);
	if (w.off > RECORD_MAX_SIZE)
		return -EINVAL;
	if (w.off > w.cap)
		return -ENOSPC;
	hdr.type = type;
	hdr.size = (uint16_t)w.off;
	memcpy(buf, &hdr, sizeof(hdr));
	return (int)w.off;
}
