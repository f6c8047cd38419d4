/*
 * index.c - the top of index/: the update (scan, then tree) and the switch
 * from updating to serving. The store is in store.c, the reports in
 * report.c; the design notes and the layers are in index.h.
 */
#include <sys/file.h>
#include <time.h>

#include "store.h"
#include "update.h"
#include "view.h"

int index_update(struct index *ix, struct index_stats *st, char *msg,
		 size_t msglen)
{
	/* the registry is named here, at the top, so that the tree builder
	 * (which the views call) never refers to the views (index.h layers) */
	if (!ix->opts.views)
		ix->opts.views = view_registry;
	int rc;
	uint64_t kept = 0;
	/* the map is full (store.h S3): grow it and go on (what the batches
	 * committed is kept; the rest is done again; the files parsed for
	 * records kept still count as parsed by this update) */
	for (int tries = 0;; tries++) {
		ix->parsed_kept = 0;
		rc = scan_update(ix, NULL, msg, msglen);
		if (rc != -ENOSPC || tries >= 32)
			break;
		kept += ix->parsed_kept;
		if (store_map_grow(ix, msg, msglen))
			break;
		strbuf_release(&ix->walk_errors);
	}
	if (!rc) {
		ix->stats.files_parsed += kept;
		/* I12: a mount's live thread syncs it once the mount answers */
		if (!ix->opts.live)
			store_sync(ix);
		/* downgrade: readers welcome, updaters elsewhere go private (I5) */
		flock(ix->lock_fd, LOCK_SH);
		ix->built_at = (int64_t)time(NULL);
	}
	if (st)
		*st = ix->stats;
	return rc;
}
