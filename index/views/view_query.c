/*
 * view_query.c - query/: the static skeleton of the query view.
 *
 * query/ lists three query directories, studies/, series/ and instances/,
 * with the dynamic ids QUERY_ID_BASE + 0, 1, 2 (index.h) and the kind
 * KIND_QDIR; everything below them is made on demand by the FUSE side
 * (fs/view_query.c, routed by fs/views.c) and nothing of it is stored.
 */
#include "view.h"

static int query_build(struct tree_builder *tb, const struct view *v,
		       struct view_top *top)
{
	/* in name order; the level of a query directory is its id - QUERY_ID_BASE */
	static const struct { uint64_t level; const char *name; } lv[] = {
		{ 2, "instances" }, { 1, "series" }, { 0, "studies" } };
	uint32_t pos = 0;
	for (size_t i = 0; i < sizeof(lv) / sizeof(lv[0]); i++) {
		int rc = tree_add(tb, v->id, &pos, QUERY_ID_BASE + lv[i].level, KIND_QDIR,
				  lv[i].name);
		if (rc)
			return rc;
	}
	top->nentries = pos;
	top->nsubdirs = pos;
	return 0;
}

const struct view view_query = { "query", ID_QUERY, query_build };
