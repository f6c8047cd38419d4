/*
 * feed.c - the change feed (.dicomfs/changes.jsonl): what an update
 * changed, one JSON line per change, written in the update's own write
 * transaction (so the feed and the tree never disagree, I4) and read by
 * the mount (index_feed_*). The invariants are (I9) and (I10) in index.h.
 *
 * Storage: the "changes" DB holds two key spaces,
 *   'o' + u64 BE byte offset -> the line (with its '\n'), and
 *   's' + u64 BE sequence number -> u64 byte offset (native),
 * and meta "feed_seq" (the last sequence number), "feed_end" (bytes ever
 * written) and "feed_first" (the oldest sequence number kept). The stream
 * is append-only: a line keeps its offset for ever, so `tail -f` and a
 * reader at an offset never see a line move. History beyond FEED_KEEP
 * lines is dropped; the dropped bytes read as '\n' (blank lines, which
 * JSONL readers skip).
 *
 * The lines of one update: study and series "created", then the instances
 * (created / updated / deleted, by source path), then series and study
 * "deleted", then study and series "updated" (a study or series that
 * existed before and after and whose instances changed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "feed.h"
#include "error.h"
#include "record.h"
#include "tags.h"

enum { ACT_CREATED, ACT_UPDATED, ACT_DELETED };
static const char *const act_name[] = { "created", "updated", "deleted" };

static int copy_mem(void **dst, const void *src, size_t n)
{
	*dst = malloc(n ? n : 1);
	if (!*dst)
		return -ENOMEM;
	memcpy(*dst, src, n);
	return 0;
}

static int rec_ok(const void *rec, size_t len)
{
	struct rec_head h;
	return rec && rec_head_get(rec, len, &h) == 0 && h.status == REC_OK;
}

int feed_note(struct feed_batch *fb, const char *rel, size_t rl, const void *old,
	      size_t oldlen)
{
	if (fb->n == fb->cap) {
		size_t cap = fb->cap ? fb->cap * 2 : 64;
		struct feed_item *v = realloc(fb->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		fb->v = v;
		fb->cap = cap;
	}
	struct feed_item *it = &fb->v[fb->n];
	memset(it, 0, sizeof(*it));
	if (copy_mem((void **)&it->rel, rel, rl))
		return -ENOMEM;
	it->rl = rl;
	if (rec_ok(old, oldlen) && copy_mem(&it->old, old, oldlen)) {
		free(it->rel);
		return -ENOMEM;
	}
	it->oldlen = it->old ? oldlen : 0;
	fb->n++;
	return 0;
}

/* "patients/a/b/c/name" of node id in txn's tree, or NULL (not placed) */
static char *node_path(struct index *ix, MDB_txn *txn, uint64_t id)
{
	char *parts[16];
	size_t np = 0, total = 0;
	char *out = NULL;
	while (id != ID_ROOT && np < 16) {
		unsigned char kb[8];
		MDB_val k = { 8, kb }, d;
		be64_put(kb, id);
		if (mdb_get(txn, ix->nodes, &k, &d) || d.mv_size < sizeof(struct node_rec))
			goto out;
		struct node_rec nr;
		memcpy(&nr, d.mv_data, sizeof(nr));
		if (sizeof(nr) + (size_t)nr.name_len > d.mv_size)
			goto out;
		parts[np] = strndup((const char *)d.mv_data + sizeof(nr), nr.name_len);
		if (!parts[np])
			goto out;
		total += nr.name_len + 1;
		np++;
		id = nr.parent;
	}
	if (id != ID_ROOT || !np)
		goto out;
	out = malloc(total + 1);
	if (out) {
		size_t o = 0;
		for (size_t i = np; i-- > 0;) {
			size_t l = strlen(parts[i]);
			memcpy(out + o, parts[i], l);
			o += l;
			out[o++] = i ? '/' : 0;
		}
	}
out:
	for (size_t i = 0; i < np; i++)
		free(parts[i]);
	return out;
}

/* the id of name in directory parent (the names DB), or 0 */
static uint64_t name_id(struct index *ix, MDB_txn *txn, uint64_t parent, const char *name,
			size_t nl)
{
	unsigned char kb[8 + 256];
	if (nl > 255)
		return 0;
	be64_put(kb, parent);
	memcpy(kb + 8, name, nl);
	MDB_val k = { 8 + nl, kb }, d;
	uint64_t ino;
	if (mdb_get(txn, ix->names, &k, &d) || d.mv_size != 8)
		return 0;
	memcpy(&ino, d.mv_data, 8);
	return ino_id(ino);
}

/* does uids/<study>[/<series>] exist in txn's tree? */
static int uid_exists(struct index *ix, MDB_txn *txn, const struct feed_lvl *lv)
{
	uint64_t s = name_id(ix, txn, ID_UIDS, lv->study, strlen(lv->study));
	if (!s || !lv->series)
		return s != 0;
	return name_id(ix, txn, s, lv->series, strlen(lv->series)) != 0;
}

static char *attr_dup(const void *rec, size_t len, uint32_t tag)
{
	const char *v = "";
	size_t l = 0;
	if (rec)
		rec_attr(rec, len, tag, &v, &l);
	return strndup(v, l);
}

/* the level entry of (study, series) (series NULL: the study), made */
static struct feed_lvl *lvl_get(struct feed_batch *fb, const void *rec, size_t len,
				int series)
{
	char *st = attr_dup(rec, len, TAG_STUDY_INSTANCE_UID);
	char *se = series ? attr_dup(rec, len, TAG_SERIES_INSTANCE_UID) : NULL;
	if (!st || (series && !se))
		goto fail;
	for (size_t i = 0; i < fb->nlvl; i++) {
		struct feed_lvl *lv = &fb->lvl[i];
		if (!strcmp(lv->study, st) && !lv->series == !se &&
		    (!se || !strcmp(lv->series, se))) {
			free(st);
			free(se);
			return lv;
		}
	}
	if (fb->nlvl == fb->clvl) {
		size_t cap = fb->clvl ? fb->clvl * 2 : 16;
		struct feed_lvl *v = realloc(fb->lvl, cap * sizeof(*v));
		if (!v)
			goto fail;
		fb->lvl = v;
		fb->clvl = cap;
	}
	struct feed_lvl *lv = &fb->lvl[fb->nlvl++];
	memset(lv, 0, sizeof(*lv));
	lv->study = st;
	lv->series = se;
	lv->patient = attr_dup(rec, len, TAG_PATIENT_ID);
	return lv;
fail:
	free(st);
	free(se);
	return NULL;
}

/* dirname of an instance path, 1 (series) or 2 (study) levels up */
static char *dir_of(const char *path, int up)
{
	if (!path)
		return NULL;
	char *d = strdup(path);
	for (int i = 0; d && i < up; i++) {
		char *s = strrchr(d, '/');
		if (s)
			*s = 0;
	}
	return d;
}

static int lvl_note(struct feed_batch *fb, const void *rec, size_t len, const char *path,
		    int is_new)
{
	for (int series = 0; series < 2; series++) {
		struct feed_lvl *lv = lvl_get(fb, rec, len, series);
		if (!lv)
			return -ENOMEM;
		char **p = is_new ? &lv->path_new : &lv->path_old;
		if (!*p && path && !(*p = dir_of(path, series ? 1 : 2)))
			return -ENOMEM;
	}
	return 0;
}

int feed_before_tree(struct index *ix, MDB_txn *txn, struct feed_batch *fb)
{
	for (size_t i = 0; i < fb->n; i++) {
		struct feed_item *it = &fb->v[i];
		MDB_val k = { it->rl, it->rel }, d;
		if (mdb_get(txn, ix->files, &k, &d) == 0 && rec_ok(d.mv_data, d.mv_size)) {
			if (copy_mem(&it->new, d.mv_data, d.mv_size))
				return -ENOMEM;
			it->newlen = d.mv_size;
		}
		if (it->old) {
			struct rec_head h;
			rec_head_get(it->old, it->oldlen, &h);
			it->oldpath = node_path(ix, txn, h.id);
			if (lvl_note(fb, it->old, it->oldlen, it->oldpath, 0))
				return -ENOMEM;
		}
		if (it->new && lvl_note(fb, it->new, it->newlen, NULL, 1))
			return -ENOMEM;
	}
	for (size_t i = 0; i < fb->nlvl; i++)
		fb->lvl[i].before = uid_exists(ix, txn, &fb->lvl[i]);
	return 0;
}

static void iso_time(struct strbuf *sb)
{
	struct timespec ts;
	struct tm tm;
	char b[40];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
	strbuf_addf(sb, "%s.%03ldZ", b, ts.tv_nsec / 1000000);
}

static void json_field(struct strbuf *sb, const char *name, const char *v)
{
	strbuf_addf(sb, ",\"%s\":", name);
	if (v)
		strbuf_add_json_str(sb, v, strlen(v));
	else
		strbuf_addstr(sb, "null");
}

/* append one line: its 's' and 'o' keys, the meta counters in fb */
static int put_line(struct index *ix, MDB_txn *txn, struct feed_batch *fb, int act,
		    const char *level, const char *patient, const char *study,
		    const char *series, const char *inst, const char *path,
		    const char *source)
{
	struct strbuf *sb = &fb->line;
	strbuf_reset(sb);
	strbuf_addf(sb, "{\"seq\":%llu,\"time\":\"", (unsigned long long)(fb->seq + 1));
	iso_time(sb);
	strbuf_addf(sb, "\",\"action\":\"%s\",\"level\":\"%s\"", act_name[act], level);
	json_field(sb, "patient", patient);
	json_field(sb, "study", study);
	json_field(sb, "series", series);
	json_field(sb, "instance", inst);
	json_field(sb, "path", path);
	json_field(sb, "source", source);
	strbuf_addstr(sb, "}\n");
	if (strbuf_error(sb))
		return -ENOMEM;
	unsigned char ko[9], ks[9];
	ko[0] = 'o';
	be64_put(ko + 1, fb->end);
	ks[0] = 's';
	be64_put(ks + 1, fb->seq + 1);
	MDB_val kk = { 9, ko }, dd = { sb->len, sb->buf };
	MDB_val sk = { 9, ks }, sd = { 8, &fb->end };
	int rc = mdb_put(txn, ix->changes, &kk, &dd, 0);
	if (!rc)
		rc = mdb_put(txn, ix->changes, &sk, &sd, 0);
	if (rc)
		return dfs_from_mdb(rc);
	fb->seq++;
	fb->end += sb->len;
	fb->lines++;
	return 0;
}

static int put_lvl(struct index *ix, MDB_txn *txn, struct feed_batch *fb, int act,
		   int series)
{
	for (size_t i = 0; i < fb->nlvl; i++) {
		struct feed_lvl *lv = &fb->lvl[i];
		if (!lv->series != !series)
			continue;
		int a = lv->before && lv->after ? ACT_UPDATED :
			lv->after ? ACT_CREATED : lv->before ? ACT_DELETED : -1;
		if (a != act)
			continue;
		int rc = put_line(ix, txn, fb, act, series ? "series" : "study", lv->patient,
				  lv->study, lv->series, NULL,
				  act == ACT_DELETED ? lv->path_old : lv->path_new, NULL);
		if (rc)
			return rc;
	}
	return 0;
}

static int cmp_item(const void *a, const void *b)
{
	const struct feed_item *x = a, *y = b;
	return source_key_cmp(x->rel, x->rl, y->rel, y->rl);
}

/* drop lines older than the last FEED_KEEP (I10) */
static int trim(struct index *ix, MDB_txn *txn, struct feed_batch *fb)
{
	uint64_t first = fb->first;
	if (fb->seq <= FEED_KEEP || first > fb->seq - FEED_KEEP)
		return 0;
	uint64_t keep = fb->seq - FEED_KEEP + 1;
	for (; first < keep; first++) {
		unsigned char ks[9], ko[9];
		ks[0] = 's';
		be64_put(ks + 1, first);
		MDB_val sk = { 9, ks }, sd;
		if (mdb_get(txn, ix->changes, &sk, &sd) || sd.mv_size != 8)
			continue;
		uint64_t off;
		memcpy(&off, sd.mv_data, 8);
		ko[0] = 'o';
		be64_put(ko + 1, off);
		MDB_val ok = { 9, ko };
		int rc = mdb_del(txn, ix->changes, &ok, NULL);
		if (!rc || rc == MDB_NOTFOUND)
			rc = mdb_del(txn, ix->changes, &sk, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return dfs_from_mdb(rc);
	}
	fb->first = keep;
	return 0;
}

int feed_after_tree(struct index *ix, MDB_txn *txn, struct feed_batch *fb)
{
	int rc;
	uint64_t v;
	fb->seq = meta_get_u64(txn, ix->meta, "feed_seq", &v) ? 0 : v;
	fb->end = meta_get_u64(txn, ix->meta, "feed_end", &v) ? 0 : v;
	fb->first = meta_get_u64(txn, ix->meta, "feed_first", &v) ? 1 : v;
	for (size_t i = 0; i < fb->nlvl; i++)
		fb->lvl[i].after = uid_exists(ix, txn, &fb->lvl[i]);
	if (fb->n)   /* fb->v may be NULL: a tree rebuilt for -o files alone */
		qsort(fb->v, fb->n, sizeof(*fb->v), cmp_item);
	for (size_t i = 0; i < fb->n; i++) {
		struct feed_item *it = &fb->v[i];
		struct rec_head h;
		if (!it->new)
			continue;
		rec_head_get(it->new, it->newlen, &h);
		it->newpath = node_path(ix, txn, h.id);
		if (lvl_note(fb, it->new, it->newlen, it->newpath, 1))
			return -ENOMEM;
	}
	if ((rc = put_lvl(ix, txn, fb, ACT_CREATED, 0)) ||
	    (rc = put_lvl(ix, txn, fb, ACT_CREATED, 1)))
		return rc;
	for (size_t i = 0; i < fb->n; i++) {
		struct feed_item *it = &fb->v[i];
		if (!it->old && !it->new)
			continue;    /* neither before nor after an instance */
		int act = it->old && it->new ? ACT_UPDATED : it->new ? ACT_CREATED : ACT_DELETED;
		const void *rec = it->new ? it->new : it->old;
		size_t len = it->new ? it->newlen : it->oldlen;
		const char *node = it->new ? it->newpath : it->oldpath;
		char *path = NULL;
		/* the instance's node names its files: <name>.dcm */
		if (node && asprintf(&path, "%s.dcm", node) < 0)
			return -ENOMEM;
		char *pat = attr_dup(rec, len, TAG_PATIENT_ID);
		char *st = attr_dup(rec, len, TAG_STUDY_INSTANCE_UID);
		char *se = attr_dup(rec, len, TAG_SERIES_INSTANCE_UID);
		char *in = attr_dup(rec, len, TAG_SOP_INSTANCE_UID);
		char *src = strndup(it->rel, it->rl);
		rc = pat && st && se && in && src ?
			put_line(ix, txn, fb, act, "instance", pat, st, se, in, path, src) :
			-ENOMEM;
		free(pat);
		free(st);
		free(se);
		free(in);
		free(src);
		free(path);
		if (rc)
			return rc;
	}
	if ((rc = put_lvl(ix, txn, fb, ACT_DELETED, 1)) ||
	    (rc = put_lvl(ix, txn, fb, ACT_DELETED, 0)) ||
	    (rc = put_lvl(ix, txn, fb, ACT_UPDATED, 0)) ||
	    (rc = put_lvl(ix, txn, fb, ACT_UPDATED, 1)))
		return rc;
	if (!fb->lines)
		return 0;
	if ((rc = trim(ix, txn, fb)) ||
	    (rc = meta_put_u64(txn, ix->meta, "feed_seq", fb->seq)) ||
	    (rc = meta_put_u64(txn, ix->meta, "feed_end", fb->end)) ||
	    (rc = meta_put_u64(txn, ix->meta, "feed_first", fb->first)))
		return rc;
	return 0;
}

void feed_release(struct feed_batch *fb)
{
	for (size_t i = 0; i < fb->n; i++) {
		free(fb->v[i].rel);
		free(fb->v[i].old);
		free(fb->v[i].new);
		free(fb->v[i].oldpath);
		free(fb->v[i].newpath);
	}
	free(fb->v);
	for (size_t i = 0; i < fb->nlvl; i++) {
		free(fb->lvl[i].study);
		free(fb->lvl[i].series);
		free(fb->lvl[i].patient);
		free(fb->lvl[i].path_old);
		free(fb->lvl[i].path_new);
	}
	free(fb->lvl);
	strbuf_release(&fb->line);
	memset(fb, 0, sizeof(*fb));
}

/* ---- reading (the mount: this thread's snapshot, I6) ---- */

int index_feed_info(struct index *ix, struct index_feed *f)
{
	MDB_txn *t = store_rtxn(ix);
	uint64_t v;
	if (!t)
		return -EIO;
	f->last_seq = meta_get_u64(t, ix->meta, "feed_seq", &v) ? 0 : v;
	f->end = meta_get_u64(t, ix->meta, "feed_end", &v) ? 0 : v;
	f->first_seq = meta_get_u64(t, ix->meta, "feed_first", &v) ? 1 : v;
	f->first_off = f->end;
	if (f->last_seq >= f->first_seq)
		index_feed_offset(ix, f->first_seq - 1, &f->first_off);
	return 0;
}

int index_feed_offset(struct index *ix, uint64_t after, uint64_t *off)
{
	struct index_feed f;
	MDB_txn *t = store_rtxn(ix);
	uint64_t v;
	if (!t)
		return -EIO;
	f.end = meta_get_u64(t, ix->meta, "feed_end", &v) ? 0 : v;
	*off = f.end;
	unsigned char ks[9];
	ks[0] = 's';
	be64_put(ks + 1, after + 1 > after ? after + 1 : after);
	MDB_val k = { 9, ks }, d;
	MDB_cursor *c;
	int rc = mdb_cursor_open(t, ix->changes, &c);
	if (rc)
		return dfs_from_mdb(rc);
	rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	if (rc == 0 && k.mv_size == 9 && ((unsigned char *)k.mv_data)[0] == 's' &&
	    d.mv_size == 8)
		memcpy(off, d.mv_data, 8);
	mdb_cursor_close(c);
	return 0;
}

int index_feed_read(struct index *ix, uint64_t pos, char *buf, size_t len, size_t *got)
{
	struct index_feed f;
	int rc = index_feed_info(ix, &f);
	*got = 0;
	if (rc)
		return rc;
	if (pos >= f.end)
		return 0;
	if (len > f.end - pos)
		len = (size_t)(f.end - pos);
	/* dropped history: blank lines (I10) */
	while (*got < len && pos < f.first_off) {
		buf[(*got)++] = '\n';
		pos++;
	}
	if (*got == len)
		return 0;
	MDB_txn *t = store_rtxn(ix);
	MDB_cursor *c;
	unsigned char ko[9];
	ko[0] = 'o';
	be64_put(ko + 1, pos);
	MDB_val k = { 9, ko }, d;
	if (!t)
		return -EIO;
	rc = mdb_cursor_open(t, ix->changes, &c);
	if (rc)
		return dfs_from_mdb(rc);
	rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	/* the line holding pos starts at pos or before it */
	if (rc || k.mv_size != 9 || ((unsigned char *)k.mv_data)[0] != 'o' ||
	    be64_get((unsigned char *)k.mv_data + 1) > pos)
		rc = mdb_cursor_get(c, &k, &d, rc ? MDB_LAST : MDB_PREV);
	while (rc == 0 && *got < len) {
		if (k.mv_size != 9 || ((unsigned char *)k.mv_data)[0] != 'o')
			break;
		uint64_t start = be64_get((unsigned char *)k.mv_data + 1);
		if (start > pos || start + d.mv_size <= pos) {
			rc = DFS_EINDEX;   /* a gap: the stream is contiguous */
			break;
		}
		size_t from = (size_t)(pos - start), n = d.mv_size - from;
		if (n > len - *got)
			n = len - *got;
		memcpy(buf + *got, (const char *)d.mv_data + from, n);
		*got += n;
		pos += n;
		rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : dfs_from_mdb(rc);
}
