/*
 * Parser for /proc/PID/maps.
 *
 * A line reads "start-end perms offset maj:min inode   path". The fields
 * before the path are parsed strictly (hex where the kernel prints hex, all
 * of them required); the path is everything after the padding that follows
 * the inode, so paths containing spaces and the " (deleted)" suffix are kept
 * verbatim. Lines are read with getline because paths can be as long as
 * PATH_MAX. Parsing is separate from I/O: stoke_maps_parse takes any FILE*.
 */
#include "sampler/maps.h"

#include <ctype.h>
#include <errno.h>
#include <sys/mman.h>

#include "sampler/sample.h"
#include "common/util.h"

/* Parse an unsigned number in base at *p; it must be followed by stop (or, if
 * stop is ' ', by the end of the line). */
static int parse_num(char **p, int base, char stop, uint64_t *ret)
{
	char *end;

	/* strtoull would accept leading blanks and a sign: refuse both. */
	if (base == 16 ? !isxdigit((unsigned char)**p) :
			 !isdigit((unsigned char)**p))
		return -EINVAL;
	errno = 0;
	*ret = strtoull(*p, &end, base);
	if (errno)
		return -EINVAL;
	if (*end == stop)
		*p = end + 1;
	else if (stop == ' ' && (*end == '\0' || *end == '\n'))
		*p = end; /* an anonymous mapping's line ends at the inode */
	else
		return -EINVAL;
	return 0;
}

static int parse_perms(char **p, struct stoke_maps_entry *e)
{
	const char *s = *p;

	if ((s[0] != 'r' && s[0] != '-') || (s[1] != 'w' && s[1] != '-') ||
	    (s[2] != 'x' && s[2] != '-') || (s[3] != 's' && s[3] != 'p') ||
	    s[4] != ' ')
		return -EINVAL;
	e->prot = (s[0] == 'r' ? PROT_READ : 0) | (s[1] == 'w' ? PROT_WRITE : 0) |
		  (s[2] == 'x' ? PROT_EXEC : 0);
	e->shared = s[3] == 's';
	*p += 5;
	return 0;
}

static int parse_dev(char **p, struct stoke_maps_entry *e)
{
	uint64_t maj, min;

	if (parse_num(p, 16, ':', &maj) < 0 || parse_num(p, 16, ' ', &min) < 0)
		return -EINVAL;
	if (maj > UINT32_MAX || min > UINT32_MAX)
		return -EINVAL;
	e->maj = (uint32_t)maj;
	e->min = (uint32_t)min;
	return 0;
}

/* The path starts after the padding; only a trailing newline is removed,
 * anything else (spaces, " (deleted)") belongs to the path. */
static const char *parse_path(char *p)
{
	size_t n;

	while (*p == ' ' || *p == '\t')
		p++;
	n = strlen(p);
	if (n && p[n - 1] == '\n')
		p[n - 1] = '\0';
	return p;
}

int stoke_maps_parse_line(char *line, struct stoke_maps_entry *ret)
{
	struct stoke_maps_entry e = { 0 };
	char *p = line;

	if (!line || !ret)
		return -EINVAL;
	if (parse_num(&p, 16, '-', &e.start) < 0 ||
	    parse_num(&p, 16, ' ', &e.end) < 0 || e.end < e.start)
		return -EINVAL;
	if (parse_perms(&p, &e) < 0 || parse_num(&p, 16, ' ', &e.pgoff) < 0)
		return -EINVAL;
	if (parse_dev(&p, &e) < 0 || parse_num(&p, 10, ' ', &e.ino) < 0)
		return -EINVAL;
	e.path = parse_path(p);
	*ret = e;
	return 0;
}

int stoke_maps_parse(FILE *f, stoke_maps_cb cb, void *userdata)
{
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	int malformed = 0;

	if (!f || !cb)
		return -EINVAL;
	for (;;) {
		struct stoke_maps_entry e;
		ssize_t n;
		int r;

		errno = 0;
		n = getline(&line, &cap, f);
		if (n < 0)
			break;
		if (stoke_maps_parse_line(line, &e) < 0) {
			if (malformed < INT32_MAX)
				malformed++;
			continue;
		}
		r = cb(&e, userdata);
		if (r != 0)
			return r;
	}
	if (ferror(f))
		return errno > 0 ? -errno : -EIO;
	if (errno == ENOMEM)
		return -ENOMEM;
	return malformed;
}

int stoke_maps_read_pid(pid_t pid, stoke_maps_cb cb, void *userdata)
{
	_cleanup_fclose_ FILE *f = NULL;
	char path[64];

	if (pid <= 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	return stoke_maps_parse(f, cb, userdata);
}

void stoke_maps_entry_to_record(const struct stoke_maps_entry *e, uint32_t pid,
				struct stoke_record *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->type = STOKE_REC_MMAP;
	ret->mmap.pid = ret->mmap.tid = pid;
	ret->mmap.addr = e->start;
	ret->mmap.len = e->end - e->start;
	ret->mmap.pgoff = e->pgoff;
	ret->mmap.is_mmap2 = true;
	ret->mmap.maj = e->maj;
	ret->mmap.min = e->min;
	ret->mmap.ino = e->ino;
	ret->mmap.prot = e->prot;
	ret->mmap.flags = e->shared ? MAP_SHARED : MAP_PRIVATE;
	ret->mmap.filename = e->path;
}
