/*
 * UTF-8 validation and JSON/XML escaping (see escape.h). Output goes
 * straight to the stream: escaping never builds intermediate strings.
 */
#include "formats/escape.h"

#include <stdlib.h>
#include <string.h>

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

size_t stoke_utf8_decode(const unsigned char *s, size_t n, uint32_t *ret_cp)
{
	uint32_t cp, min;
	size_t len;

	if (s[0] < 0x80) {
		*ret_cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2, cp = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, cp = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4, cp = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are invalid:
	 * strict readers (Python, JSON.parse via TextDecoder) reject them. */
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*ret_cp = cp;
	return len;
}

char *stoke_utf8_sanitize(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), out = 0;
	uint32_t cp;
	char *r;

	/* Worst case: every byte becomes three. */
	r = malloc(n * 3 + 1);
	if (!r)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t len = stoke_utf8_decode(u + i, n - i, &cp);

		if (len) {
			memcpy(r + out, u + i, len);
			out += len;
			i += len;
		} else {
			memcpy(r + out, REPLACEMENT, 3);
			out += 3;
			i++;
		}
	}
	r[out] = '\0';
	return r;
}

void stoke_json_string_to(const char *s, void (*write)(void *ctx, const char *p, size_t n),
			  void *ctx)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)u), from = 0;
	uint32_t cp;

	write(ctx, "\"", 1);
	/* Runs of bytes that need nothing go out in one piece. */
	for (size_t i = 0; i < n;) {
		size_t len = stoke_utf8_decode(u + i, n - i, &cp);
		char esc[6];

		if (len && cp != '"' && cp != '\\' && cp >= 0x20 && cp != 0x7f) {
			i += len;
			continue;
		}
		write(ctx, (const char *)u + from, i - from);
		if (!len) {
			write(ctx, REPLACEMENT, 3);
			len = 1;
		} else if (cp == '"' || cp == '\\') {
			esc[0] = '\\';
			esc[1] = (char)cp;
			write(ctx, esc, 2);
		} else {
			memcpy(esc, "\\u00", 4);
			esc[4] = digits[cp >> 4];
			esc[5] = digits[cp & 15];
			write(ctx, esc, 6);
		}
		i += len;
		from = i;
	}
	write(ctx, (const char *)u + from, n - from);
	write(ctx, "\"", 1);
}

static void file_write(void *ctx, const char *p, size_t n)
{
	fwrite(p, 1, n, ctx);
}

void stoke_json_string(FILE *out, const char *s)
{
	stoke_json_string_to(s, file_write, out);
}

void stoke_xml_text(FILE *out, const char *s)
{
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)u);
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		size_t len = stoke_utf8_decode(u + i, n - i, &cp);

		if (!len) {
			fputs(REPLACEMENT, out);
			i++;
			continue;
		}
		switch (cp) {
		case '&': fputs("&amp;", out); break;
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&apos;", out); break;
		default:
			/* XML 1.0 allows only tab, LF and CR below 0x20, and not
			 * U+FFFE/U+FFFF. */
			if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') ||
			    cp == 0xfffe || cp == 0xffff)
				fputs(REPLACEMENT, out);
			else
				fwrite(u + i, 1, len, out);
		}
		i += len;
	}
}
