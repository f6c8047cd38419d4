/*
 * access.h - who may see what on a shared (-o allow_other) mount.
 *
 * The model (README "Access model"):
 * (A1) A caller sees an instance (its names, its attributes and each of
 *      its files) only if the caller could read its source in the archive:
 *      the archive directory and every directory below it on the path
 *      searchable, the file readable, ACLs honoured, by the caller's uid,
 *      gid and supplementary groups. The kernel decides: the check is a
 *      faccessat2(AT_EACCESS) run on the FUSE thread under the caller's
 *      fsuid/fsgid/groups (per-thread raw syscalls), then switched back.
 * (A2) A patient/study/series directory is "full" for a caller who can
 *      read every instance below it, "partial" for one who can read some.
 *      Its name is seen by a caller who can read the instances the name
 *      comes from (node_rec.name_src; names made of UIDs, as in uids/,
 *      by anyone who can read one instance below); a partial directory
 *      lists only what the caller sees and shows the caller's part in
 *      st_nlink and st_mtime. Files derived from several instances (level
 *      files, FHIR, volumes) and the directory's xattrs: full directories
 *      only. .dicomfs/errors.tsv: the mount owner and root only.
 *      status.json (counts only): everyone.
 * (A3) Root and the mount owner see everything. An archive whose sources
 *      and directories are all readable by others without ACLs is
 *      "uniform": nothing is checked and the kernel caches stay on. A mixed
 *      archive turns the kernel's entry, attribute and readdir caches off
 *      (they are shared between users) and checks each lookup, readdir
 *      entry, open and xattr.
 *      A source without per-file permissions (a DICOMweb server, source.h
 *      R9) is uniform: who may mount it decides, as for the server itself.
 * (A4) Answers are cached per (uid, gid, groups, node) for ACCESS_TTL
 *      seconds: a chmod in a mixed archive shows within that time; when
 *      the archive is known to have changed (dfs_access_changed) at once.
 * (A5) A daemon that cannot switch credentials (not root) serves a mixed
 *      archive to its owner only.
 * (A6) Without -o allow_other the kernel lets only the owner (and with
 *      allow_root, root) in: the archive counts as uniform, no scan.
 * (A7) Uniform is decided at mount from the index and checked again while
 *      mounted (fresh stat and ACL of every file and directory) every 10 s,
 *      or 20 times as long as a check takes, and when the archive is known
 *      to have changed (dfs_access_changed): once found mixed it stays so
 *      until unmounted, and the kernel's cached tree is dropped.
 * (A8) query/ answers a caller who does not see everything from what that
 *      caller sees: an instance row when dfs_access_path allows its
 *      instance, a series or study row when it allows the (full) directory;
 *      names, links and manifests are made of those rows only, per caller
 *      (not shared between callers, never cached by the kernel).
 * (A9) In a mixed archive a node that anyone may see whole (checked as a
 *      caller with no groups whose uid owns nothing: the "other" bits of
 *      every source below and directory above, none of them with an ACL,
 *      since an ACL may deny one named user what others get) looks the
 *      same to every caller: its entry and attributes are cached by the
 *      kernel for ACCESS_TTL seconds; every other node for none.
 *
 * Errors: 0 or negative errno. Threading: dfs_access_init/fini on the main
 * thread around the session loop; the rest from any FUSE thread.
 */
#ifndef DICOMFS_ACCESS_H
#define DICOMFS_ACCESS_H
#include <stdint.h>
#include <sys/types.h>
#include "fs.h"

#define ACCESS_TTL 5
/* a caller with more supplementary groups (or whose groups cannot be
 * read: fuse_req_getgroups) is refused in a mixed archive */
#define ACCESS_MAX_GROUPS 64

struct dfs_caller {
	uid_t uid;
	gid_t gid;
	int owner;         /* root or the mount owner: sees everything */
	int all;           /* owner, or a uniform archive (A3) */
	int anyone;        /* the A9 pseudo-caller */
	int ngroups;       /* -1: not read yet */
	uint64_t gh;       /* hash of uid, gid and groups */
	gid_t groups[ACCESS_MAX_GROUPS];
	fuse_req_t req;
};

/* 1 when the mount options hold allow_other: only then do users other
 * than the owner and root reach the mount (A6). */
int dfs_access_shared_opts(const struct fuse_args *args);
/* Decide uniform or mixed (A3), make the cache and, while uniform, start
 * the recheck thread (A7; set fs->se first). 0 or -ENOMEM. */
int dfs_access_init(struct dfs *fs);
/* Stop the recheck thread and free: after the session loop, before the
 * session is destroyed. Safe when init failed or was not called. */
void dfs_access_fini(struct dfs *fs);
/* The archive's files or permissions changed (a watch saw it): cached
 * answers are dropped (A4) and uniformity is checked again now (A7; on
 * the recheck thread; returns at once). Any thread. */
void dfs_access_changed(struct dfs *fs);
/* 1 when the archive is uniform (kernel caches on). */
int dfs_access_uniform(const struct dfs *fs);
/* The entry and attribute timeout of immutable nodes: fs->timeout while
 * the archive is uniform, 0 once mixed (A3). */
double dfs_timeout(const struct dfs *fs);
/* The caller of req. */
void dfs_caller(struct dfs *fs, fuse_req_t req, struct dfs_caller *c);
/* 1 when caller c may see inode ino (A1, A2; a query link: A8), else 0. */
int dfs_access_ino(struct dfs *fs, struct dfs_caller *c, uint64_t ino);
/* The entry and attribute timeout of ino's reply: fs->timeout while
 * uniform; in a mixed archive ACCESS_TTL when anyone sees it whole (A9),
 * else 0. */
double dfs_access_timeout(struct dfs *fs, uint64_t ino);
/* 1 when c may read the xattrs of ino (a directory's: full only, A2). */
int dfs_access_attrs(struct dfs *fs, struct dfs_caller *c, uint64_t ino);
/* Adjust st of ino to what c sees (a partial directory, A2). */
void dfs_access_stat(struct dfs *fs, struct dfs_caller *c, uint64_t ino, struct stat *st);
/* 1 when c sees node id and every directory above it in its view: an
 * instance it can read, or a full directory (A8). */
int dfs_access_path(struct dfs *fs, struct dfs_caller *c, uint64_t id);
/* 1 when what c sees must be filtered (not everything, A8); then c->gh
 * (its groups' hash) is set. */
int dfs_access_filtered(struct dfs_caller *c);

#endif
