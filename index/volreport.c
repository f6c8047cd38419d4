/*
 * volreport.c - see volreport.h. The report names series by node id; the
 * path is resolved through the nodes DB when errors.tsv is generated
 * (directory names are not known yet while a series is built).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "volreport.h"

int volreport_check(const struct index *ix, const struct vol_in *in, size_t n, char *why,
		    size_t whylen)
{
	struct vol_plan p;
	if (!(ix->opts.kinds & (1u << KIND_VOLUME_NII | 1u << KIND_VOLUME_NPY))) {
		if (whylen)
			why[0] = 0;   /* not a volume, and nothing to say */
		return 0;
	}
	int rc = vol_plan_make(in, n, &p, why, whylen);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		vol_plan_free(&p);
		return 1;
	}
	if (whylen && !why[0])
		snprintf(why, whylen, "not a volume");
	return 0;
}

int volreport_add(struct strbuf *report, uint64_t series_id, const char *why)
{
	if (!*why)
		return 0;
	return strbuf_addf(report, "%016" PRIx64 "\t%s\n", series_id, why) < 0 ? -ENOMEM : 0;
}

int volreport_series(struct index *ix, struct strbuf *report, uint64_t series_id,
		     const struct vol_in *in, size_t n)
{
	char why[256] = "";
	int rc = volreport_check(ix, in, n, why, sizeof(why));
	return rc != 0 ? rc : volreport_add(report, series_id, why);
}

int volreport_store(struct index *ix, MDB_txn *txn, const struct strbuf *report)
{
	return meta_put_str(txn, ix->meta, "novolume", strbuf_str(report), report->len);
}

/* "patients/a/b/c" of node id, or -1 */
static int node_path(struct index *ix, MDB_txn *txn, uint64_t id, char *out, size_t cap)
{
	char tmp[4096];
	size_t len = 0;
	for (int depth = 0; depth < 8 && id != ID_PATIENTS; depth++) {
		unsigned char kb[8];
		be64_put(kb, id);
		MDB_val k = { 8, kb }, d;
		struct node_rec r;
		if (mdb_get(txn, ix->nodes, &k, &d) || d.mv_size < sizeof(r))
			return -1;
		memcpy(&r, d.mv_data, sizeof(r));
		if (sizeof(r) + r.name_len > d.mv_size || len + r.name_len + 1 >= sizeof(tmp))
			return -1;
		memmove(tmp + r.name_len + 1, tmp, len);
		memcpy(tmp, (char *)d.mv_data + sizeof(r), r.name_len);
		tmp[r.name_len] = '/';
		len += r.name_len + 1;
		id = r.parent;
	}
	if (id != ID_PATIENTS || !len)
		return -1;
	snprintf(out, cap, "patients/%.*s", (int)(len - 1), tmp);
	return 0;
}

void volreport_errors(struct index *ix, MDB_txn *txn, struct strbuf *out)
{
	MDB_val k = { 8, "novolume" }, d;
	if (mdb_get(txn, ix->meta, &k, &d) || !d.mv_size)
		return;
	char *s = malloc(d.mv_size + 1);
	if (!s)
		return;
	memcpy(s, d.mv_data, d.mv_size);
	s[d.mv_size] = 0;
	for (char *line = s, *nl; *line; line = nl) {
		nl = strchr(line, '\n');
		if (nl)
			*nl++ = 0;
		else
			nl = line + strlen(line);
		char *tab = strchr(line, '\t'), path[4200], why[400];
		if (!tab)
			continue;
		*tab = 0;
		uint64_t id = strtoull(line, NULL, 16);
		if (node_path(ix, txn, id, path, sizeof(path)))
			continue;
		snprintf(why, sizeof(why), "no volume: %s", tab + 1);
		strbuf_add_tsv2(out, path, why);
	}
	free(s);
}
