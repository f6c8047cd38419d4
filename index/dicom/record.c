#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "record.h"

static int rec_grow(struct rec_buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 512;
	while (cap < b->len + more)
		cap *= 2;
	unsigned char *p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int rec_begin(struct rec_buf *b, const struct rec_head *h)
{
	b->len = 0;
	int rc = rec_grow(b, sizeof(*h));
	if (rc)
		return rc;
	memcpy(b->data, h, sizeof(*h));
	((struct rec_head *)(void *)b->data)->nattrs = 0;
	b->len = sizeof(*h);
	return 0;
}

int rec_add(struct rec_buf *b, uint32_t tag, const char vr[2], const char *val,
	    size_t len)
{
	struct rec_head h;
	if (len > 0xFFFF)
		len = 0xFFFF;
	int rc = rec_grow(b, 8 + len);
	if (rc)
		return rc;
	unsigned char *p = b->data + b->len;
	uint16_t l16 = (uint16_t)len;
	memcpy(p, &tag, 4);
	memcpy(p + 4, vr, 2);
	memcpy(p + 6, &l16, 2);
	if (len)
		memcpy(p + 8, val, len);
	b->len += 8 + len;
	memcpy(&h, b->data, sizeof(h));
	h.nattrs++;
	memcpy(b->data, &h, sizeof(h));
	return 0;
}

void rec_release(struct rec_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int rec_head_get(const void *val, size_t len, struct rec_head *h)
{
	if (len < sizeof(*h))
		return -EINVAL;
	memcpy(h, val, sizeof(*h));
	if (h->version != REC_VERSION)
		return -EINVAL;
	return 0;
}

int rec_next(const void *val, size_t len, size_t *pos, uint32_t *tag,
	     char vr[2], const char **v, size_t *l)
{
	const unsigned char *p = val;
	uint16_t l16;
	if (*pos == 0)
		*pos = sizeof(struct rec_head);
	if (len < sizeof(struct rec_head) || *pos + 8 > len)
		return 0;
	memcpy(tag, p + *pos, 4);
	memcpy(vr, p + *pos + 4, 2);
	memcpy(&l16, p + *pos + 6, 2);
	if (*pos + 8 + l16 > len)
		return 0;
	*v = (const char *)p + *pos + 8;
	*l = l16;
	*pos += 8 + l16;
	return 1;
}

int rec_attr(const void *val, size_t len, uint32_t tag, const char **v,
	     size_t *l)
{
	size_t pos = 0;
	uint32_t t;
	char vr[2];
	while (rec_next(val, len, &pos, &t, vr, v, l))
		if (t == tag)
			return 1;
	return 0;
}

size_t rec_attrs(const void *val, size_t len, const uint32_t *tags, size_t n,
		 const char **v, size_t *l)
{
	size_t pos = 0, found = 0, vl;
	uint32_t t;
	char vr[2];
	const char *vv;
	for (size_t i = 0; i < n; i++) {
		v[i] = NULL;
		l[i] = 0;
	}
	while (found < n && rec_next(val, len, &pos, &t, vr, &vv, &vl))
		for (size_t i = 0; i < n; i++)
			if (tags[i] == t && !v[i]) {
				v[i] = vv;
				l[i] = vl;
				found++;
			}
	return found;
}

int rec_add_blob(struct rec_buf *b, uint32_t tag, const char vr[2],
		 const void *val, size_t len)
{
	const char *p = val;
	do {
		size_t n = len > 0xFFFF ? 0xFFFF : len;
		int rc = rec_add(b, tag, vr, p, n);
		if (rc)
			return rc;
		p += n;
		len -= n;
	} while (len);
	return 0;
}

int rec_blob(const void *val, size_t len, uint32_t tag, void **out,
	     size_t *outlen)
{
	size_t pos = 0, l, total = 0, start = 0;
	uint32_t t;
	char vr[2];
	const char *v;
	int found = 0;
	/* the chunks are consecutive: measure them, then copy */
	while (rec_next(val, len, &pos, &t, vr, &v, &l)) {
		if (t != tag) {
			if (found)
				break;
			start = pos;
			continue;
		}
		found = 1;
		total += l;
	}
	if (!found)
		return 0;
	char *buf = malloc(total ? total : 1);
	if (!buf)
		return -ENOMEM;
	size_t o = 0;
	pos = start;
	while (o < total && rec_next(val, len, &pos, &t, vr, &v, &l) && t == tag) {
		memcpy(buf + o, v, l);
		o += l;
	}
	*out = buf;
	*outlen = total;
	return 1;
}
