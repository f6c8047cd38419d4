/*
 * index.c - the top of index/: the update (scan, then tree) and the switch
 * from updating to serving. The store is in store.c, the reports in
 * report.c; the design notes and the layers are in index.h.
 */
#include <sys/file.h>
#include <time.h>

#include "store.h"
#include "update.h"

int index_update(struct index *ix, struct index_stats *st, char *msg,
		 size_t msglen)
{
	int rc = scan_update(ix, msg, msglen);
	if (!rc) {
		mdb_env_sync(ix->env, 1);
		/* downgrade: readers welcome, updaters elsewhere go private (I5) */
		flock(ix->lock_fd, LOCK_SH);
		ix->built_at = (int64_t)time(NULL);
	}
	if (st)
		*st = ix->stats;
	return rc;
}
