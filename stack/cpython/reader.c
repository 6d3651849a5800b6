/*
 * Reading a CPython process's Python frames from outside (see cpython.h).
 *
 * The target keeps running: every pointer read from it is checked before
 * it is followed (non-NULL, aligned, readable; a code object's type is
 * PyCode_Type, a string's PyUnicode_Type, whose addresses come from the
 * interpreter's .dynsym), chains are bounded and cycles end them. A read
 * that fails or a check that does not hold ends the stack with a
 * "[python-truncated]" frame.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/hashmap.h"
#include "cpython.h"
#include "sampler/maps.h"
#include "offsets.h"

#define MAX_THREADS 4096
/* Code objects named so far, in an array indexed by address (common's
 * u64map, address -> position + 1); past CODE_MAX entries it starts again
 * empty. */
#define CODE_MAX 65536

/* A code object's entry is trusted for this long after it was last checked
 * against reuse (its type, filename, qualname and linetable read again):
 * checking costs four process_vm_readv calls per frame, which on a 60-frame
 * Python stack was 61% of stoke's CPU per sample. The names are read when
 * the sample is processed, not at its instant, so a code object freed and
 * its address reused within the window is the same approximation as one
 * reused between the sample and its processing. */
#define CODE_RECHECK_NS 50000000ULL

struct code_entry {
	uint64_t addr, filename, qualname; /* validated against reuse */
	uint64_t checked_ns;		   /* CLOCK_MONOTONIC_COARSE */
	struct stoke_py_frame f;	   /* lineno unset */
	uint64_t linetable;
	uint8_t *table;
	size_t tablelen;
};

struct stoke_py {
	pid_t pid;
	const struct stoke_py_offsets *o;
	unsigned long hexversion;
	char version[32];
	char binary[PATH_MAX];
	uint64_t runtime, code_type, unicode_type;
	uint64_t eval_lo, eval_hi; /* _PyEval_EvalFrameDefault's code, or 0 */
	struct stoke_py_offsets own; /* 3.13: from _Py_DebugOffsets */
	struct code_entry *codes; /* addr 0: a stale entry, read again */
	size_t ncodes, codes_cap;
	struct stoke_u64map code_index;
};

static int rd(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {buf, len}, remote = {(void *)(uintptr_t)addr, len};

	if (addr < 4096)
		return -EFAULT;
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EFAULT;
}

static int rd_ptr(pid_t pid, uint64_t addr, uint64_t *ret)
{
	int r = rd(pid, addr, ret, sizeof(*ret));

	if (r == 0 && (*ret & 7))
		return -EFAULT; /* every object we follow is 8-aligned */
	return r;
}

/* ---- finding the interpreter ---- */

struct syms {
	uint64_t runtime, version, code_type, unicode_type;
	uint64_t eval, eval_size; /* _PyEval_EvalFrameDefault */
	uint64_t first_load_vaddr;
	bool is_dyn;
};

static int elf_syms(const char *path, struct syms *s)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	elf_version(EV_CURRENT);
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	int r = -ENOENT;
	GElf_Ehdr eh;

	memset(s, 0, sizeof(*s));
	if (!e || !gelf_getehdr(e, &eh))
		goto out;
	s->is_dyn = eh.e_type == ET_DYN;
	size_t nph;
	if (elf_getphdrnum(e, &nph) == 0) {
		for (size_t i = 0; i < nph; i++) {
			GElf_Phdr ph;
			if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD) {
				s->first_load_vaddr = ph.p_vaddr & ~(uint64_t)4095;
				break;
			}
		}
	}
	/* .dynsym first (present in Debian's stripped binary), .symtab then */
	for (int pass = 0; pass < 2; pass++) {
		Elf_Scn *scn = NULL;
		while ((scn = elf_nextscn(e, scn))) {
			GElf_Shdr sh;
			if (!gelf_getshdr(scn, &sh) ||
			    sh.sh_type != (pass == 0 ? SHT_DYNSYM : SHT_SYMTAB) || !sh.sh_entsize)
				continue;
			Elf_Data *d = elf_getdata(scn, NULL);
			size_t n = sh.sh_size / sh.sh_entsize;
			for (size_t i = 0; d && i < n; i++) {
				GElf_Sym sym;
				if (!gelf_getsym(d, (int)i, &sym) || !sym.st_value)
					continue;
				const char *nm = elf_strptr(e, sh.sh_link, sym.st_name);
				if (!nm)
					continue;
				if (!strcmp(nm, "_PyRuntime"))
					s->runtime = sym.st_value;
				else if (!strcmp(nm, "Py_Version"))
					s->version = sym.st_value;
				else if (!strcmp(nm, "PyCode_Type"))
					s->code_type = sym.st_value;
				else if (!strcmp(nm, "PyUnicode_Type"))
					s->unicode_type = sym.st_value;
				else if (!strcmp(nm, "_PyEval_EvalFrameDefault"))
					s->eval = sym.st_value, s->eval_size = sym.st_size;
			}
		}
		if (s->runtime)
			break;
	}
	r = s->runtime ? 0 : -ENOENT;
out:
	if (e)
		elf_end(e);
	close(fd);
	return r;
}

struct find_ctx {
	pid_t pid;
	char path[PATH_MAX]; /* the file found, as the process names it */
	uint64_t base;	     /* start of its mapping at file offset 0 */
	struct syms s;
	bool found;
	char tried[8][PATH_MAX];
	int ntried;
};

static bool looks_like_python(const char *path)
{
	const char *b = strrchr(path, '/');

	b = b ? b + 1 : path;
	return !strncmp(b, "python", 6) || !strncmp(b, "libpython", 9);
}

static int find_cb(const struct stoke_maps_entry *e, void *data)
{
	struct find_ctx *c = data;

	if (e->pgoff != 0 || e->path[0] != '/' || !looks_like_python(e->path))
		return 0;
	for (int i = 0; i < c->ntried; i++)
		if (!strcmp(c->tried[i], e->path))
			return 0;
	if (c->ntried < 8)
		snprintf(c->tried[c->ntried++], PATH_MAX, "%s", e->path);
	/* through the process's root: the file it has mapped, in its mount
	 * namespace */
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "/proc/%d/root%s", (int)c->pid, e->path);
	if (elf_syms(p, &c->s) < 0)
		return 0;
	snprintf(c->path, sizeof(c->path), "%s", e->path);
	c->base = e->start;
	c->found = true;
	return 1;
}

int stoke_py_open(pid_t pid, struct stoke_py **ret, unsigned long *version_hex, char *why,
		  size_t whylen)
{
	struct find_ctx *c = calloc(1, sizeof(*c));
	int r;

	if (version_hex)
		*version_hex = 0;
	if (!c)
		return -ENOMEM;
	c->pid = pid;
	r = stoke_maps_read_pid(pid, find_cb, c);
	if (r < 0) {
		if (why)
			snprintf(why, whylen, "cannot read /proc/%d/maps: %s", (int)pid,
				 strerror(-r));
		free(c);
		return r;
	}
	if (!c->found) {
		if (why)
			snprintf(why, whylen,
				 "process %d is not CPython (no python or libpython with "
				 "_PyRuntime mapped)",
				 (int)pid);
		free(c);
		return -ENOENT;
	}
	uint64_t bias = c->s.is_dyn ? c->base - c->s.first_load_vaddr : 0;
	uint64_t hex = 0;
	if (!c->s.version || rd(pid, c->s.version + bias, &hex, sizeof(hex)) < 0) {
		/* Py_Version exists since 3.11: older interpreters have none */
		if (why)
			snprintf(why, whylen,
				 "%s: CPython older than 3.11 (no Py_Version): not supported",
				 c->path);
		free(c);
		return -ENOTSUP;
	}
	hex &= 0xffffffffu;
	if (version_hex)
		*version_hex = hex;
	unsigned major = (hex >> 24) & 0xff, minor = (hex >> 16) & 0xff, micro = (hex >> 8) & 0xff;
	const struct stoke_py_offsets *o = stoke_py_offsets_find(major, minor);
	if (!o || !c->s.code_type || !c->s.unicode_type) {
		if (why)
			snprintf(why, whylen,
				 "%s: CPython %u.%u.%u: no known layout (stoke reads 3.11 to 3.13)",
				 c->path, major, minor, micro);
		free(c);
		return -ENOTSUP;
	}
	struct stoke_py *py = calloc(1, sizeof(*py));
	if (!py) {
		free(c);
		return -ENOMEM;
	}
	py->pid = pid;
	py->o = o;
	if (major == 3 && minor == 13) {
		/* the interpreter's own description wins over the table */
		uint64_t raw[STOKE_PY_DEBUG_OFFSETS_WORDS];
		if (rd(pid, c->s.runtime + bias, raw, sizeof(raw)) == 0 &&
		    stoke_py_offsets_from_debug(raw, hex, &py->own) == 0)
			py->o = &py->own;
	}
	py->hexversion = hex;
	snprintf(py->version, sizeof(py->version), "%u.%u.%u", major, minor, micro);
	snprintf(py->binary, sizeof(py->binary), "%s", c->path);
	py->runtime = c->s.runtime + bias;
	py->code_type = c->s.code_type + bias;
	py->unicode_type = c->s.unicode_type + bias;
	if (c->s.eval && c->s.eval_size) {
		py->eval_lo = c->s.eval + bias;
		py->eval_hi = py->eval_lo + c->s.eval_size;
	}
	free(c);
	*ret = py;
	return 0;
}

void stoke_py_close(struct stoke_py *py)
{
	if (!py)
		return;
	for (size_t i = 0; i < py->ncodes; i++)
		free(py->codes[i].table);
	free(py->codes);
	stoke_u64map_free(&py->code_index);
	free(py);
}

const char *stoke_py_version(const struct stoke_py *py)
{
	return py->version;
}

const char *stoke_py_binary(const struct stoke_py *py)
{
	return py->binary;
}

bool stoke_py_is_eval_addr(const struct stoke_py *py, uint64_t addr)
{
	return addr >= py->eval_lo && addr < py->eval_hi;
}

int stoke_py_threads(struct stoke_py *py, struct stoke_py_thread *out, int max)
{
	const struct stoke_py_offsets *o = py->o;
	uint64_t interp, ts;
	int n = 0, r;

	r = rd_ptr(py->pid, py->runtime + o->runtime_interpreters_head, &interp);
	if (r < 0)
		return r;
	if (!interp)
		return 0; /* not initialised yet, or finalised */
	r = rd_ptr(py->pid, interp + o->interp_threads_head, &ts);
	if (r < 0)
		return r;
	for (int guard = 0; ts && n < max && guard < MAX_THREADS; guard++) {
		uint64_t tid = 0, ptid = 0;
		if (rd(py->pid, ts + o->tstate_native_thread_id, &tid, sizeof(tid)) < 0 ||
		    rd(py->pid, ts + o->tstate_thread_id, &ptid, sizeof(ptid)) < 0)
			break;
		out[n].tstate = ts;
		out[n].tid = (pid_t)tid;
		out[n].pthread_id = ptid;
		n++;
		if (rd_ptr(py->pid, ts + o->tstate_next, &ts) < 0)
			break;
	}
	return n;
}

/* ---- code objects ---- */

/* A str object's text as UTF-8 (truncated to len-1 bytes). */
static int read_str(struct stoke_py *py, uint64_t addr, char *buf, size_t len)
{
	const struct stoke_py_offsets *o = py->o;
	uint64_t type, slen;
	uint32_t state;

	buf[0] = 0;
	if (rd_ptr(py->pid, addr + o->ob_type, &type) < 0 || type != py->unicode_type)
		return -EFAULT;
	if (rd(py->pid, addr + o->unicode_length, &slen, sizeof(slen)) < 0 ||
	    rd(py->pid, addr + o->unicode_state, &state, sizeof(state)) < 0)
		return -EFAULT;
	unsigned kind = (state >> 2) & 7, compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
	if (!compact || (kind != 1 && kind != 2 && kind != 4) || slen > (1u << 20))
		return -EFAULT;
	if (ascii) {
		size_t n = slen < len - 1 ? slen : len - 1;
		if (rd(py->pid, addr + o->unicode_ascii_data, buf, n) < 0)
			return -EFAULT;
		buf[n] = 0;
		return 0;
	}
	/* non-ASCII: read the code points (at most len of them), encode UTF-8 */
	size_t cps = slen < len ? slen : len;
	uint8_t raw[256 * 4];
	if (cps * kind > sizeof(raw))
		cps = sizeof(raw) / kind;
	if (rd(py->pid, addr + o->unicode_compact_data, raw, cps * kind) < 0)
		return -EFAULT;
	size_t w = 0;
	for (size_t i = 0; i < cps; i++) {
		uint32_t cp = kind == 1	  ? raw[i]
			      : kind == 2 ? ((uint16_t *)raw)[i]
					  : ((uint32_t *)raw)[i];
		char enc[4];
		size_t k;
		if (cp < 0x80) {
			enc[0] = (char)cp, k = 1;
		} else if (cp < 0x800) {
			enc[0] = (char)(0xc0 | cp >> 6), enc[1] = (char)(0x80 | (cp & 0x3f)), k = 2;
		} else if (cp < 0x10000) {
			enc[0] = (char)(0xe0 | cp >> 12),
			enc[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
			enc[2] = (char)(0x80 | (cp & 0x3f)), k = 3;
		} else {
			enc[0] = (char)(0xf0 | cp >> 18),
			enc[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
			enc[2] = (char)(0x80 | ((cp >> 6) & 0x3f)),
			enc[3] = (char)(0x80 | (cp & 0x3f));
			k = 4;
		}
		if (w + k >= len)
			break;
		memcpy(buf + w, enc, k);
		w += k;
	}
	buf[w] = 0;
	return 0;
}

static unsigned read_varint(const uint8_t *t, size_t len, size_t *i)
{
	unsigned v = 0, shift = 0;

	while (*i < len) {
		uint8_t b = t[(*i)++];
		v |= (unsigned)(b & 63) << shift;
		shift += 6;
		if (!(b & 64) || shift > 24)
			break;
	}
	return v;
}

static int read_svarint(const uint8_t *t, size_t len, size_t *i)
{
	unsigned u = read_varint(t, len, i);

	return (u & 1) ? -(int)(u >> 1) : (int)(u >> 1);
}

/*
 * The 3.11 location table: entries of a header byte (bit 7 set, a 4-bit
 * code, and the number of code units covered minus one in the low 3 bits)
 * followed by the code's bytes. Codes 0-9 (short form) and 10-12 (one-line
 * form, line delta code-10) keep or step the line; 13 carries a signed
 * varint line delta alone; 14 the long form (signed delta, then end line,
 * column and end column varints); 15 means no location.
 */
int stoke_py_linetable_line(const uint8_t *t, size_t len, int firstlineno, long instr_idx)
{
	long addr = 0;
	int line = firstlineno;
	size_t i = 0;

	if (instr_idx < 0)
		return firstlineno;
	while (i < len) {
		uint8_t h = t[i++];
		if (!(h & 0x80))
			return -1; /* not at an entry: corrupt or misread */
		unsigned code = (h >> 3) & 15, units = (h & 7) + 1;
		int this_line = line;
		bool none = false;
		if (code == 15) {
			none = true;
		} else if (code == 14) {
			line += read_svarint(t, len, &i);
			this_line = line;
			read_varint(t, len, &i);
			read_varint(t, len, &i);
			read_varint(t, len, &i);
		} else if (code == 13) {
			line += read_svarint(t, len, &i);
			this_line = line;
		} else if (code >= 10) {
			line += (int)code - 10;
			this_line = line;
			i += 2;
		} else {
			i += 1;
		}
		if (instr_idx < addr + units)
			return none ? -1 : this_line;
		addr += units;
	}
	return -1;
}

/* The entry of code, or a new one for it (addr 0). NULL only without
 * memory. */
static struct code_entry *code_slot(struct stoke_py *py, uint64_t code)
{
	uint64_t pos = stoke_u64map_get(&py->code_index, code);
	struct code_entry *c;

	if (pos)
		return &py->codes[pos - 1];
	if (py->ncodes >= CODE_MAX) { /* start again */
		for (size_t k = 0; k < py->ncodes; k++)
			free(py->codes[k].table);
		py->ncodes = 0;
		stoke_u64map_free(&py->code_index);
	}
	if (py->ncodes == py->codes_cap) {
		size_t n = py->codes_cap ? py->codes_cap * 2 : 256;
		struct code_entry *t = realloc(py->codes, n * sizeof(*t));

		if (!t)
			return NULL;
		py->codes = t;
		py->codes_cap = n;
	}
	if (stoke_u64map_add(&py->code_index, code, py->ncodes + 1) < 0)
		return NULL;
	c = &py->codes[py->ncodes++];
	memset(c, 0, sizeof(*c));
	return c;
}

static uint64_t coarse_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static struct code_entry *code_get(struct stoke_py *py, uint64_t code)
{
	const struct stoke_py_offsets *o = py->o;
	struct code_entry *c = code_slot(py, code);
	uint64_t type, filename, qualname, linetable, now = coarse_now_ns();
	int r;

	if (!c)
		return NULL;
	if (c->addr == code && now - c->checked_ns < CODE_RECHECK_NS)
		return c;
	r = rd_ptr(py->pid, code + o->ob_type, &type);

	/* the process has exited (its last samples are read after it): what
	 * the cache has is what its code was */
	if (r == -ESRCH && c->addr == code)
		return c;
	if (r < 0 || type != py->code_type ||
	    rd_ptr(py->pid, code + o->code_filename, &filename) < 0 ||
	    rd_ptr(py->pid, code + o->code_qualname, &qualname) < 0 ||
	    rd_ptr(py->pid, code + o->code_linetable, &linetable) < 0)
		return NULL;
	/* a freed code object's address reused by another: its names differ */
	if (c->addr == code && c->filename == filename && c->qualname == qualname &&
	    c->linetable == linetable) {
		c->checked_ns = now;
		return c;
	}
	/* a failed read below leaves the entry stale (addr 0): read again */
	free(c->table);
	memset(c, 0, sizeof(*c));
	int32_t first;
	if (rd(py->pid, code + o->code_firstlineno, &first, sizeof(first)) < 0 ||
	    read_str(py, filename, c->f.filename, sizeof(c->f.filename)) < 0 ||
	    read_str(py, qualname, c->f.qualname, sizeof(c->f.qualname)) < 0)
		return NULL;
	c->f.firstlineno = first;
	uint64_t tlen = 0;
	if (linetable && rd(py->pid, linetable + o->bytes_size, &tlen, sizeof(tlen)) == 0 &&
	    tlen > 0 && tlen < (1u << 20) && (c->table = malloc(tlen))) {
		if (rd(py->pid, linetable + o->bytes_data, c->table, tlen) == 0) {
			c->tablelen = tlen;
		} else {
			free(c->table);
			c->table = NULL;
		}
	}
	c->addr = code;
	c->filename = filename;
	c->qualname = qualname;
	c->linetable = linetable;
	c->checked_ns = now;
	return c;
}

static void truncated(struct stoke_py_frame *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->qualname, sizeof(f->qualname), "[python-truncated]");
	f->lineno = -1;
}

/* The innermost frame of a thread state (0 when no Python runs). */
static int current_frame(struct stoke_py *py, uint64_t tstate, uint64_t *frame)
{
	const struct stoke_py_offsets *o = py->o;
	uint64_t cframe;
	int r;

	*frame = 0;
	if (o->tstate_cframe == STOKE_PY_NO_FIELD)
		return rd_ptr(py->pid, tstate + o->tstate_current_frame, frame);
	r = rd_ptr(py->pid, tstate + o->tstate_cframe, &cframe);
	if (r < 0 || !cframe)
		return r;
	return rd_ptr(py->pid, cframe + o->cframe_current_frame, frame);
}

/* How much of a frame one read takes: up to its last field we use. */
static size_t frame_len(const struct stoke_py_offsets *o)
{
	size_t len = (size_t)o->frame_code + 8;

	if ((size_t)o->frame_previous + 8 > len)
		len = (size_t)o->frame_previous + 8;
	if ((size_t)o->frame_prev_instr + 8 > len)
		len = (size_t)o->frame_prev_instr + 8;
	if (o->frame_is_entry != STOKE_PY_NO_FIELD && (size_t)o->frame_is_entry + 1 > len)
		len = (size_t)o->frame_is_entry + 1;
	if (o->frame_owner != STOKE_PY_NO_FIELD && (size_t)o->frame_owner + 1 > len)
		len = (size_t)o->frame_owner + 1;
	return len;
}

#define FRAME_BUF 128

/* One walk of the chain; frames[], codes[] and instrs[] get what was
 * followed (*followed of them, shim frames included), for the check that
 * the chain did not change meanwhile. */
static int walk(struct stoke_py *py, uint64_t tstate, struct stoke_py_frame *out, int max,
		uint64_t *frames, uint64_t *codes, uint64_t *instrs, int *followed)
{
	const struct stoke_py_offsets *o = py->o;
	uint64_t frame;
	int n = 0, m = 0;
	size_t flen = frame_len(o);
	uint8_t buf[FRAME_BUF];

	*followed = 0;
	if (flen > sizeof(buf))
		return -EINVAL;
	if (current_frame(py, tstate, &frame) < 0)
		return -EFAULT;
	for (; frame && m < max; m++) {
		if (n == max - 1)
			break;
		/* a cycle (a frame reused while we walk) ends the chain */
		for (int k = m > 8 ? m - 8 : 0; k < m; k++)
			if (frames[k] == frame)
				goto cut;
		uint64_t code, prev_instr, next;
		if (rd(py->pid, frame, buf, flen) < 0)
			goto cut;
		memcpy(&code, buf + o->frame_code, 8);
		memcpy(&prev_instr, buf + o->frame_prev_instr, 8);
		memcpy(&next, buf + o->frame_previous, 8);
		if (next & 7)
			goto cut;
		frames[m] = frame;
		codes[m] = code;
		instrs[m] = prev_instr;
		*followed = m + 1;
		if (o->frame_owner != STOKE_PY_NO_FIELD &&
		    buf[o->frame_owner] == STOKE_PY_OWNED_BY_CSTACK) {
			/* 3.12+: the shim under the first frame an
			 * _PyEval_EvalFrameDefault call runs */
			if (n > 0)
				out[n - 1].is_entry = true;
			frame = next;
			continue;
		}
		struct code_entry *c = (code & 7) ? NULL : code_get(py, code);
		if (!c)
			goto cut;
		out[n] = c->f;
		out[n].is_entry = o->frame_is_entry != STOKE_PY_NO_FIELD && buf[o->frame_is_entry];
		long idx = ((long)prev_instr - (long)(code + o->code_adaptive)) / 2;
		out[n].lineno = c->table ? stoke_py_linetable_line(c->table, c->tablelen,
								   c->f.firstlineno, idx)
					 : -1;
		n++;
		frame = next;
	}
	if (!frame)
		return n;
cut: /* deeper than max, or a read or check failed: n <= max - 1 here */
	truncated(&out[n++]);
	return n;
}

int stoke_py_frame_at(struct stoke_py *py, uint64_t code, uint64_t instr, bool is_entry,
		      struct stoke_py_frame *out)
{
	struct code_entry *c = (code & 7) ? NULL : code_get(py, code);

	if (!c) {
		truncated(out);
		return -EFAULT;
	}
	*out = c->f;
	out->is_entry = is_entry;
	long idx = ((long)instr - (long)(code + py->o->code_adaptive)) / 2;
	out->lineno = c->table ? stoke_py_linetable_line(c->table, c->tablelen, c->f.firstlineno,
							 idx)
			       : -1;
	return 0;
}

const struct stoke_py_offsets *stoke_py_layout(const struct stoke_py *py)
{
	return py->o;
}

/* Whether the chain still is frames[]/codes[] from its top, its callers
 * at the same instructions (a caller that returned and was called again
 * from the same frame slot has moved on). */
static bool unchanged(struct stoke_py *py, uint64_t tstate, const uint64_t *frames,
		      const uint64_t *codes, const uint64_t *instrs, int m)
{
	const struct stoke_py_offsets *o = py->o;
	uint64_t frame, code, instr;
	size_t flen = frame_len(o);
	uint8_t buf[FRAME_BUF];

	if (current_frame(py, tstate, &frame) < 0)
		return false;
	for (int i = 0; i < m; i++) {
		if (frame != frames[i] || rd(py->pid, frame, buf, flen) < 0)
			return false;
		memcpy(&code, buf + o->frame_code, 8);
		memcpy(&instr, buf + o->frame_prev_instr, 8);
		memcpy(&frame, buf + o->frame_previous, 8);
		if (code != codes[i] || (i > 0 && instr != instrs[i]))
			return false;
	}
	return true;
}

/*
 * The target runs while we walk: a call or a return between two reads
 * gives a torn stack (a leaf under the caller of another). A walk is kept
 * when a second pass finds the same frames running the same code (frames
 * live on the thread's data stack and are reused, so the code is checked
 * too, and the callers' instructions); otherwise it is retried, and the last walk is returned after
 * MAX_TRIES.
 */
#define MAX_TRIES 8

int stoke_py_stack(struct stoke_py *py, uint64_t tstate, struct stoke_py_frame *out, int max)
{
	uint64_t *frames, *codes, *instrs;
	int n = 0;

	if (max <= 0)
		return 0;
	frames = calloc((size_t)max * 3, sizeof(*frames));
	if (!frames)
		return -ENOMEM;
	codes = frames + max;
	instrs = codes + max;
	for (int t = 0; t < MAX_TRIES; t++) {
		int m;
		n = walk(py, tstate, out, max, frames, codes, instrs, &m);
		if (n <= 0)
			break;
		/* a truncated walk (its last frame has no file) is retried too:
		 * a torn read may have cut it */
		if (out[n - 1].filename[0] && unchanged(py, tstate, frames, codes, instrs, m))
			break;
	}
	free(frames);
	return n;
}
