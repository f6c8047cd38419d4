/*
 * views.c - the registry of the top-level views (view.h), one line each,
 * and the names shared by the views that list instances.
 */
#include <stddef.h>

#include "view.h"

extern const struct view view_patients, view_uids, view_query, view_dotdir, view_anon,
	view_sources;

/* Build order (V3): append new views at the end; the root lists them in
 * name order whatever their place here (V2). */
const struct view *const view_registry[] = {
	&view_patients,
	&view_uids,
	&view_query,
	&view_dotdir,
	&view_anon,
	&view_sources,
	NULL,
};

size_t view_count(const struct view *const *views)
{
	size_t n = 0;
	while (views[n])
		n++;
	return n;
}

