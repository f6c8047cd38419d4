/*
 * xattr.c - the user.dicom.<Keyword> extended attributes of every node.
 *
 * Design notes
 * (X1) Instances: every indexed attribute of their own record that has a
 *      non-empty value. Directories and the files that belong to them (the
 *      level files, a series' volume files): the attributes of the node's
 *      level and the levels above, each the first non-empty value below
 *      (levelagg.h A1), as in the level files. Root, patients/ and .dicomfs
 *      have none.
 * (X2) A directory's attribute set is computed once and kept in the level
 *      cache (kind_level.c K2) under inode (id, kind 0).
 * (X3) Only the user namespace is supported: security.* (SELinux labels)
 *      and system.* (POSIX ACLs) answer EOPNOTSUPP, which `ls -l` and the
 *      ACL libraries remember per device, instead of asking again for every
 *      file (two round trips per entry). user.* names other than
 *      user.dicom.<a keyword of tags.c> answer ENODATA.
 * (X4) Where (issue 16): by default only directories and .dcm files carry
 *      the attributes, so cp -a, rsync -X and tar --xattrs do not copy the
 *      patient's name and ID onto pixel-only exports (.npy, .png, volumes)
 *      nor onto the generated JSON; -o xattrs=all (fs->xattrs_all) puts
 *      them on every file as X1 says. sources/ (view_sources.c) has none
 *      but user.dicom.source.
 * (X5) user.dicom.source: the relative path in the archive of the file a
 *      .dcm (not an anon/ one) or a sources/ file serves. It is the only
 *      attribute of a sources/ file; with -o xattrs=all also on every
 *      file of an instance.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "levelagg.h"
#include "strbuf.h"
#include "tags.h"

#define XATTR_PREFIX "user.dicom."

/*
 * The attribute set of an inode as a blob of { u32 index into dfs_tags,
 * u32 length, bytes } (non-empty values only, dfs_tags order), malloc()ed
 * (NULL when empty). (X1, X2)
 */
static int attr_blob(struct dfs *fs, uint64_t ino, char **out, size_t *outlen)
{
	struct node_view nv;
	uint64_t id = ino_id(ino);
	unsigned kind = ino_kind(ino);
	const char *levels;
	struct strbuf b = STRBUF_INIT;
	int rc;

	*out = NULL;
	*outlen = 0;
	if (kind >= KIND_MAX || !dfs_kinds[kind])
		return -ENOENT;
	if ((rc = index_node(fs->ix, id, &nv)))
		return rc;
	if ((!fs->xattrs_all && kind != KIND_DIR && kind != KIND_DCM) ||
	    kind == KIND_SOURCE || (nv.rec->flags & NODE_F_SOURCE))
		return 0;   /* (X4) */
	switch (nv.rec->type) {
	case NODE_INSTANCE: levels = "PSEI"; break;
	case NODE_SERIES: levels = "PSE"; break;
	case NODE_STUDY: levels = "PS"; break;
	case NODE_PATIENT: levels = "P"; break;
	default: return 0;   /* root, patients/, .dicomfs: none */
	}
	if (nv.rec->type != NODE_INSTANCE &&
	    dfs_level_cache_get(fs, ino_make(id, 0), out, outlen))
		return 0;

	struct levelagg a;
	if ((rc = levelagg_init(&a, levels)))
		return rc;
	if (nv.rec->type == NODE_INSTANCE) {
		const void *rec;
		size_t len;
		rc = dfs_anon_record(fs, &nv, &rec, &len, &a);
		if (!rc)
			levelagg_record(&a, rec, len);
	} else {
		rc = dfs_level_agg(fs, id, nv.rec->type, &a);
	}
	for (size_t i = 0; !rc && i < dfs_ntags; i++) {
		if (!a.v[i].l)
			continue;
		uint32_t hdr[2] = { (uint32_t)i, (uint32_t)a.v[i].l };
		strbuf_add(&b, hdr, sizeof(hdr));
		strbuf_add(&b, a.v[i].s, a.v[i].l);
	}
	levelagg_free(&a);
	if (!rc)
		rc = strbuf_error(&b);
	if (rc) {
		strbuf_release(&b);
		return rc;
	}
	if (nv.rec->type != NODE_INSTANCE)
		dfs_level_cache_put(fs, ino_make(id, 0), strbuf_str(&b), b.len);
	*out = strbuf_detach(&b, outlen);
	return 0;
}

#define XATTR_SOURCE XATTR_PREFIX "source"

/* (X5) the source path of inode ino, or NULL (*len set) */
static const char *source_of(struct dfs *fs, uint64_t ino, size_t *len)
{
	struct node_view nv;
	unsigned kind = ino_kind(ino);
	if ((kind != KIND_DCM && kind != KIND_SOURCE &&
	     !(fs->xattrs_all && (kind == KIND_JSON || kind == KIND_NPY || kind == KIND_PNG))) ||
	    index_node(fs->ix, ino_id(ino), &nv) || nv.rec->type != NODE_INSTANCE ||
	    (nv.rec->flags & NODE_F_ANON) || !nv.rec->path_len)
		return NULL;
	*len = nv.rec->path_len;
	return nv.relpath;
}

int dfs_xattr_list(struct dfs *fs, uint64_t ino, char **buf, size_t *len)
{
	char *blob;
	size_t bl;
	struct strbuf b = STRBUF_INIT;
	int rc = attr_blob(fs, ino, &blob, &bl);
	*buf = NULL;
	*len = 0;
	if (rc)
		return rc;
	for (size_t p = 0; p + 8 <= bl;) {
		uint32_t hdr[2];
		memcpy(hdr, blob + p, sizeof(hdr));
		const char *kw = dfs_tags[hdr[0]].keyword;
		strbuf_addstr(&b, XATTR_PREFIX);
		strbuf_add(&b, kw, strlen(kw) + 1);
		p += 8 + hdr[1];
	}
	free(blob);
	size_t sl;
	if (source_of(fs, ino, &sl))
		strbuf_add(&b, XATTR_SOURCE, sizeof(XATTR_SOURCE));
	if ((rc = strbuf_error(&b))) {
		strbuf_release(&b);
		return rc;
	}
	*buf = strbuf_detach(&b, len);
	return 0;
}

int dfs_xattr_get(struct dfs *fs, uint64_t ino, const char *name, char **buf,
		  size_t *len)
{
	char *blob;
	size_t bl;
	*buf = NULL;
	*len = 0;
	if (strncmp(name, "user.", 5) != 0)
		return -EOPNOTSUPP;   /* (X3) */
	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) != 0)
		return -ENODATA;
	if (strcmp(name, XATTR_SOURCE) == 0) {
		size_t sl;
		const char *src = source_of(fs, ino, &sl);
		if (!src)
			return -ENODATA;
		if (!(*buf = malloc(sl)))
			return -ENOMEM;
		memcpy(*buf, src, sl);
		*len = sl;
		return 0;
	}
	const struct dfs_tag *t = tags_by_keyword(name + strlen(XATTR_PREFIX));
	if (!t)
		return -ENODATA;
	int rc = attr_blob(fs, ino, &blob, &bl);
	if (rc)
		return rc;
	rc = -ENODATA;
	for (size_t p = 0; p + 8 <= bl;) {
		uint32_t hdr[2];
		memcpy(hdr, blob + p, sizeof(hdr));
		if (&dfs_tags[hdr[0]] == t) {
			*buf = malloc(hdr[1] ? hdr[1] : 1);
			if (!*buf) {
				rc = -ENOMEM;
				break;
			}
			memcpy(*buf, blob + p + 8, hdr[1]);
			*len = hdr[1];
			rc = 0;
			break;
		}
		p += 8 + hdr[1];
	}
	free(blob);
	return rc;
}
