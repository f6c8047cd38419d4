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
 * (A2) A directory of patients/ or uids/ (patient, study, series) and its
 *      level files, volumes and xattrs, hence every file derived from
 *      several instances, are seen only by callers who can read EVERY
 *      instance below it (its name and values come from its instances).
 *      query/ answers come from the whole archive: served only to callers
 *      who can read every instance. .dicomfs/errors.tsv: the mount owner
 *      and root only. status.json (counts only): everyone.
 * (A3) Root and the mount owner see everything. An archive whose sources
 *      and directories are all readable by others without ACLs (decided
 *      once at mount, dfs_access_init) is "uniform": nothing is checked
 *      and the kernel caches stay on. A mixed archive turns the kernel's
 *      entry, attribute and readdir caches off (they are shared between
 *      users) and checks each lookup, readdir entry, open and xattr.
 *      A source without per-file permissions (a DICOMweb server, source.h
 *      R9) is uniform: who may mount it decides, as for the server itself.
 * (A4) Answers are cached per (uid, gid, groups, node) for ACCESS_TTL
 *      seconds: a chmod in the archive shows within that time.
 * (A5) A daemon that cannot switch credentials (not root) serves a mixed
 *      archive to its owner only.
 * (A6) Without -o allow_other the kernel lets only the owner (and with
 *      allow_root, root) in: the archive counts as uniform, no scan.
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
	int ngroups;       /* -1: not read yet */
	uint64_t gh;       /* hash of uid, gid and groups */
	gid_t groups[ACCESS_MAX_GROUPS];
	fuse_req_t req;
};

/* 1 when the mount options hold allow_other: only then do users other
 * than the owner and root reach the mount (A6). */
int dfs_access_shared_opts(const struct fuse_args *args);
/* Decide uniform or mixed (A3) and make the cache: 0 or -ENOMEM. */
int dfs_access_init(struct dfs *fs);
void dfs_access_fini(struct dfs *fs);
/* 1 when the archive is uniform (kernel caches on). */
int dfs_access_uniform(const struct dfs *fs);
/* The caller of req. */
void dfs_caller(struct dfs *fs, fuse_req_t req, struct dfs_caller *c);
/* 1 when caller c may see inode ino (A1, A2), else 0. */
int dfs_access_ino(struct dfs *fs, struct dfs_caller *c, uint64_t ino);
/* 1 when c may use query/ (A2). */
int dfs_access_query(struct dfs *fs, struct dfs_caller *c);

#endif
