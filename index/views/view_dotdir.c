/*
 * view_dotdir.c - .dicomfs/: the mount's own files.
 *
 * errors.tsv (KIND_ERRORS) and status.json (KIND_STATUS), both with the id
 * of the directory (ID_DOTDIR); their content is made when read
 * (fs/kind_dotdir.c from index_status_json / index_errors_tsv). The change
 * feed (index.h I10): changes.jsonl (KIND_CHANGES, id ID_DOTDIR) and the
 * directory changes/ (ID_CHANGES), served by fs/kind_changes.c.
 */
#include "view.h"

static int dotdir_build(struct tree_builder *tb, const struct view *v,
			struct view_top *top)
{
	uint32_t pos = 0, dirs;
	int rc;
	if ((rc = tree_add(tb, v->id, &pos, v->id, KIND_ERRORS, "errors.tsv")) ||
	    (rc = tree_add(tb, v->id, &pos, v->id, KIND_STATUS, "status.json")))
		return rc;
	dirs = pos;
	if ((rc = tree_add(tb, v->id, &pos, ID_CHANGES, KIND_CHANGES_DIR, "changes")))
		return rc;
	top->nsubdirs = pos - dirs;
	if ((rc = tree_add(tb, v->id, &pos, v->id, KIND_CHANGES, "changes.jsonl")))
		return rc;
	top->nentries = pos;
	return 0;
}

const struct view view_dotdir = { ".dicomfs", ID_DOTDIR, dotdir_build };
