/*
 * index.h - the persistent tag index (LMDB) and the tree built from it.
 *
 * index/ knows nothing of FUSE: it answers "which node has this name in
 * this directory", "what are the attributes of node N", "list directory D
 * from position P", in terms of node ids and inode numbers.
 *
 * Design notes. The invariants are numbered; code that relies on one cites
 * it ("(I5)").
 * (I1) Id spaces. A node id is a 59-bit number; an inode number is
 *      (id << 5 | kind), kind from enum dfs_kind, so all files derived from
 *      one instance share its id (only the kind differs). Ids 0..15 are
 *      reserved (ID_ROOT, ID_PATIENTS, ID_DOTDIR, ID_QUERY, ID_UIDS,
 *      ID_CHANGES, ID_CHANGES_SINCE); query
 *      directories live at QUERY_ID_BASE and above and are never stored.
 * (I2) Ids are stable across remounts: a directory's id comes from the
 *      "keys" DB (one id per level letter + key, allocated once from meta
 *      "next_id" and kept), an instance's from its file record (allocated
 *      when the path is first indexed, kept while it exists).
 * (I3) Named DBs in one environment:
 *        meta     "format" -> INDEX_FORMAT, "archive" -> real path of the
 *                 archive, "next_id" -> u64, "tree_valid" -> u64, "tags" ->
 *                 u32 array (the indexed tag set), "dups" and "novolume" ->
 *                 TSV text, "n_*" -> u64 counts
 *        files    relative source path -> struct rec_head + attributes
 *        keys     level letter + key text -> u64 node id
 *        nodes    u64 BE id -> struct node_rec + name [+ source relpath]
 *        names    u64 BE parent id + name -> u64 inode
 *        dirents  u64 BE parent id + u32 BE position -> u64 inode + name
 *                 An instance's files in a series directory are one group
 *                 record in each (INDEX_FORMAT 13): names: parent + base
 *                 name + NUL (no file name holds a NUL) -> u64 inode of
 *                 kind KIND_GROUP + u32 mask of the kinds it has; dirents:
 *                 -> that inode + mask + base name. index_lookup and
 *                 index_readdir give the files <base>.<ext> of
 *                 index_group_files in the mask (inode: the id with the
 *                 file's kind); a listing's positions are the record's
 *                 << 3 | the file's place in index_group_files.
 *        changes  the change feed (feed.c): 'o' + u64 BE offset -> line,
 *                 's' + u64 BE sequence number -> u64 offset
 *        aux      the tree's bookkeeping for updates in place (I11):
 *                 't' + u64 BE top id + u64 BE child id -> struct child
 *                 (tree.c) + base name + uid; 's' + SOP Instance UID +
 *                 NUL + source path -> "" (every OK record)
 * (I4) The tree (nodes/names/dirents, and aux) is a pure function of the OK
 *      records of "files" and of "keys": it is rebuilt (or updated in
 *      place, I11) in the same write transaction as any change to "files",
 *      so a reader never sees one without the other. The update before a
 *      mount, which no reader can see (I5's exclusive lock), commits in
 *      steps instead (the parse every BATCH records, the tree DB by DB:
 *      tree_build_split), with meta "tree_valid" 0 until its last commit:
 *      an update cut short leaves an index whose tree is built again. The
 *      reports it keeps
 *      in meta ("dups", "novolume", "anon_excluded") are TSV lines sorted
 *      bytewise.
 * (I5) One writer. Before the mount, the update holds an exclusive flock
 *      on the index directory's "lock" file; the mount then holds it shared
 *      and only the mount's live thread (live.c) writes, one write
 *      transaction per batch of changes. Another mount or updater cannot
 *      have it exclusive and builds a private index of its own instead,
 *      at once while the holder serves ("serving" held shared, index_serving),
 *      else after waiting up to 10 s for it (a mount closing after umount).
 * (I6) Readers see one snapshot per request: a thread's read transaction
 *      is begun (renewed) by its first index call of a request and reset
 *      by index_request_end at the request's end (ll.c), so the next
 *      request sees the newest committed generation and an idle thread
 *      pins no old pages. Pointers into the map (struct node_view, file
 *      records, names) are valid until index_request_end; what outlives a
 *      request copies them or holds a snapshot of its own (index_snap_take:
 *      the catalog, catalog.h C6).
 * (I7) The index records its format version and the archive it was built
 *      from and is rebuilt from scratch when either does not match or LMDB
 *      reports the environment corrupt.
 * (I8) The environment is never open across fork(): the update closes it
 *      (index_close_env) before the mount daemonizes and the mount reopens
 *      it (index_reopen: read-only, or read-write for the live thread).
 * (I9) Live updates (live.c): the source's watch (source.h R8), or a rescan
 *      every -o rescan seconds, queues paths; after LIVE_QUIET_MS without
 *      new events (at most LIVE_MAX_WAIT_MS after the first) the live thread
 *      re-walks them, parses what changed in the contained parser processes
 *      (worker.h) and writes records, tree (I4) and feed lines in ONE write
 *      transaction: a kill at any moment leaves the last committed
 *      generation, and the next mount's walk re-parses only what changed
 *      after it. Instance ids (so inode numbers) stay with their path (I2).
 *      A file found by walking a directory whose mtime is younger than
 *      LIVE_STABLE_MS is deferred (still being written), and so is a file
 *      with a hidden name (".x", the temporary names of rsync and cp + mv)
 *      younger than LIVE_HIDDEN_MS: it is usually renamed before. After
 *      each commit the mount is told (index_live_ops).
 * (I10) The change feed (feed.c): every update of an index that already had
 *      records (live, or a remount that found changes) appends JSON lines
 *      with consecutive sequence numbers to the "changes" DB in its own
 *      write transaction; the last FEED_KEEP (100,000) lines are kept. The
 *      first build of an index writes none (a consumer starts with a full
 *      sync); a rebuild of the index (I7) restarts the feed at 1.
 * (I11) Updates in place (tree.c tree_update): a live batch (I9) on a valid
 *      tree rewrites only what its changed records show, with the same
 *      result as a rebuild (I4; tests/mount_live.sh compares the two).
 *      Groups: patients/ and anon/ children are patients (key 'P'/'A' +
 *      patient key), uids/ children studies ('u' + StudyInstanceUID);
 *      everything below a group's directory depends on its records only.
 *      Touched: the SOP UIDs S of the changed records (before and after),
 *      the patients P and studies U of those records and of every record
 *      of a UID in S (aux 's': a duplicate's winner may change, tree.c
 *      dedup_sop). Their old subtrees (found from "keys" and walked) name
 *      the rest of the records they need (any other record keeps its win
 *      or loss); they are deleted and written again, so ids stay (I2).
 *      The listing of a top is redone from aux 't' (the names before
 *      sib_finish, the uids their suffixes come from, each child's
 *      aggregate and counts): the names made unique again and the nodes of
 *      the children whose name may have changed (a base name that left or
 *      joined) rewritten; the root and top nodes get the archive's
 *      attributes (V2) from the patients' aggregates. Only patients/
 *      (required), uids/ and anon/ depend on records; another view's
 *      build must not, or the update rebuilds whole. The directories
 *      rewritten are named to the mount (index_live_ops.entry for their
 *      names only). DICOMFS_TREE_FULL=1 rebuilds whole (benchmarks).
 * (I12) Durability without waiting (LMDB runs with MDB_NOSYNC): before its
 *      first commit that is not on disk, the writer writes the file
 *      "unsynced" (this boot's id) and syncs it and its directory
 *      (store_commit); after mdb_env_sync it removes it (store_sync). The
 *      mount's update is synced by the live thread once the mount answers
 *      (not before: ~25 ms of the first build of 20,000 files), each live
 *      batch after its commit, an update without a mount at its end; an
 *      update that changed nothing writes nothing. At open (the exclusive
 *      lock held): a marker of this boot (a writer killed: the page cache
 *      holds its commits) is synced away (only then: a new index's first
 *      commit stays marked until the build's sync); one of another boot, or
 *      unreadable, means the machine stopped before the commits were on
 *      disk: the index may be torn and is removed to be built again (the
 *      feed with it). tests/mount_remount.sh.
 * (I13) A first build's memory is bounded by -o build_mem (default 1 GiB):
 *      when "files" has more records than a part holds (build_mem over
 *      the full build's measured heap per instance, tree.c
 *      BUILD_INST_BYTES), the tree is built in parts (tree_build_parts):
 *      the OK records fall in parts by a hash of their patient key (a
 *      patient is never cut), the first part is built whole, each next is
 *      added as new records by tree_update (I11: the same tree a full
 *      build gives; the ids of directories may differ, I2 holds from
 *      there on), sources/ is listed by the last. Each part is committed
 *      before the next (the update before a mount only: I4, tree_valid 0
 *      until the last). What stays proportional to the archive: the
 *      walk's list, 8 bytes a record (the parts' hashes), the tops'
 *      listings (patients, studies) and sources/'s. status.json
 *      "tree_parts"; tests/mount_live.sh compares a build in parts with a
 *      full one. DICOMFS_TREE_PART=N: N records a part (tests).
 *
 * Layers (include and call graph, no circle; tests/index_layers.sh checks):
 *
 *     fs/ --> index.h (+ report.h)           the public API
 *     index.c    index_update: the top  --> update.h
 *     live.c     the live thread (I9)   --> update.h (scan_update), store.h
 *     scan.c     walk + parse           --> update.h (tree_build), feed.h
 *     feed.c     the change feed (I10)  --> feed.h --> store.h
 *     tree.c     the tree               --> update.h, volreport.h, store.h
 *     report.c   status.json, errors.tsv --> report.h, volreport.h, store.h
 *     volreport.c                       --> volreport.h --> store.h
 *     store.c    env, lock, meta, reads --> store.h --> index.h, base/
 *     (all of them may use index/dicom/ and index/base/, which use nothing
 *     of index/)
 *
 * INDEX_FORMAT changelog (bump it when what is stored changes meaning; an
 * index of another format is rebuilt, I7):
 *   1  first release: files, keys, nodes, names, dirents; inode = id << 4 |
 *      kind (kinds dir, dcm, status.json, errors.tsv).
 *   2  5-bit kinds (id << 5 | kind) for the derived files (.json, .npy,
 *      .png, level JSON and FHIR, volumes); records carry json_size
 *      (REC_VERSION 2); the tree lists the level files and the kinds served.
 *   3  (0008,0201) TimezoneOffsetFromUTC indexed; the tree DBs are written
 *      by sorted appends.
 *   4  records carry json_bulk beside json_size (REC_VERSION 3).
 *   5  ids 3 query/ and 4 uids/ reserved, the uids/ view (keys 'u', 'v';
 *      instance nodes nlink 2), meta "tags" (the indexed tag set may grow:
 *      -o index_tags) and meta "novolume" (series without a volume).
 *   6  directory nodes carry name_src, the instances their names come from
 *      (the access model shows a name only to who can read them, access.h
 *      A2).
 *   7  records of instances with NumberOfFrames, and of Siemens mosaics,
 *      end with the frame table of their functional groups / CSA header
 *      (index/dicom/fgroups.h, attribute FG_REC_TAG): volumes of enhanced
 *      multi-frame objects and mosaics.
 *   (additive, no bump: the "changes" DB and meta "feed_seq", "feed_end",
 *      "feed_first" of the change feed (I10); an older index gets an empty
 *      feed.)
 *   8  json_size counts the top-level elements after Pixel Data (issue 12;
 *      dcmjson.h).
 *   9  id 7 anon/ reserved, the anon/ view (keys 'A', 'B', 'C' for its
 *      patient, study and series directories, 'a' for its instances);
 *      node_rec.flags (NODE_F_ANON); meta "anon_conf" (the key's id and
 *      the burned-in policy the tree was built with) and "anon_excluded"
 *      (TSV: instances left out of anon/); BurnedInAnnotation indexed.
 *  10  names are glob-safe (naming.h N1): '*' '?' '[' ']' of DICOM values
 *      stored as '_', a leading '~' as '_', the accession number in a
 *      study name as "(ACC)" (was "[ACC]"), ACR-NEMA dates YYYY.MM.DD
 *      named as YYYY-MM-DD.
 *  11  id 8 sources/ reserved, the sources/ view (keys 'R' + directory
 *      path, kind 24 KIND_SOURCE: every source file under its relative
 *      path; nodes of the files that are no instance of patients/); meta
 *      "tree_kinds" (the kinds the tree lists, -o files); SOP Instance UID
 *      conflicts are shown (tree.c: dedup_sop), "dups" lists them too.
 *  12  the "aux" DB (I11: the tops' children, the SOP UID index) for
 *      updates of the tree in place; meta reports sorted by line.
 *  13  an instance's files are one group record in names and dirents
 *      (I3, KIND_GROUP) instead of one record per file: at most 4 records
 *      per instance in each (patients/, uids/, anon/, sources/) instead
 *      of 13 (issue 17: the tree of a build is a third smaller).
 *
 * Errors: 0 or negative errno / DFS_* (error.h).
 * Threading: index_open/update/close_env/reopen on one thread, before the
 * FUSE loop; the lookup functions from any number of threads after it.
 */
#ifndef DICOMFS_INDEX_H
#define DICOMFS_INDEX_H
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>
#include <sys/types.h>
#include "source.h"

#define INDEX_FORMAT "dicomfs-index 13"

/*
 * File kinds. The numbers are part of the inode scheme (above), hence of
 * INDEX_FORMAT: they stay here. What a kind is called and which directory
 * lists it are the views' (view.h (V4)); what it serves is fs/'s (kinds.c).
 */
enum dfs_kind {
	KIND_DIR = 1,
	KIND_DCM = 2,            /* <instance>.dcm: the original bytes */
	KIND_STATUS = 3,         /* .dicomfs/status.json */
	KIND_ERRORS = 4,         /* .dicomfs/errors.tsv */
	KIND_JSON = 5,           /* <instance>.json: DICOM JSON Model */
	KIND_NPY = 6,            /* <instance>.npy: decoded pixels */
	KIND_PNG = 7,            /* <instance>.png: 8-bit preview */
	KIND_SERIES_JSON = 8,    /* series.json (QIDO-RS series result) */
	KIND_STUDY_JSON = 9,     /* study.json */
	KIND_PATIENT_JSON = 10,  /* patient.json */
	KIND_STUDY_FHIR = 11,    /* study.fhir.json: FHIR R4 ImagingStudy */
	KIND_PATIENT_FHIR = 12,  /* patient.fhir.json: FHIR R4 Patient */
	KIND_VOLUME_NII = 13,    /* volume.nii */
	KIND_VOLUME_NPY = 14,    /* volume.npy */
	/* query/ (fs/view_query.c): symlinks to a study / series / instance
	 * (the id is the target's, plus the link's depth, see QLINK_*), and
	 * the directories and manifests of the dynamic query id space */
	KIND_QLINK_STUDY = 15,
	KIND_QLINK_SERIES = 16,
	KIND_QLINK_INSTANCE = 17,
	KIND_QMANIFEST_CSV = 18, /* <query>/manifest.csv */
	KIND_QMANIFEST_JSONL = 19, /* <query>/manifest.jsonl */
	KIND_QDIR = 20,          /* a query directory (dynamic id) */
	/* the change feed (I10, fs/kind_changes.c): .dicomfs/changes.jsonl
	 * (id ID_DOTDIR), the directories .dicomfs/changes/ and its since/
	 * (ids ID_CHANGES, ID_CHANGES_SINCE) and since/<seq>.jsonl (id: seq) */
	KIND_CHANGES = 21,
	KIND_CHANGES_DIR = 22,
	KIND_CHANGES_SINCE = 23,
	/* sources/ (view_sources.c): a source file of the archive, its
	 * original bytes (every record: duplicates and files that are not
	 * instances too); the id is the file record's (I2) */
	KIND_SOURCE = 24,
	/* index-internal, never an inode the kernel sees: a dirents/names
	 * record that stands for the files of one instance (I3) */
	KIND_GROUP = 25,
	KIND_MAX = 32,
};

/*
 * I3: the files an instance's group record stands for, in listing order
 * (<instance>.<ext>: view.h V4), at most 8; ends with { 0, NULL }.
 */
struct index_group_file {
	unsigned kind;
	const char *ext;
};
extern const struct index_group_file index_group_files[];

/* Reserved ids: the root, and one per top-level view (view.h (V1)). */
#define ID_ROOT     0
#define ID_PATIENTS 1   /* patients/ (index/views/view_patients.c) */
#define ID_DOTDIR   2   /* .dicomfs/ (view_dotdir.c) */
#define ID_QUERY    3   /* query/ (view_query.c) */
#define ID_UIDS     4   /* uids/ (view_uids.c) */
#define ID_CHANGES  5   /* .dicomfs/changes/ (fs/kind_changes.c, not stored) */
#define ID_CHANGES_SINCE 6   /* .dicomfs/changes/since/ (not stored) */
#define ID_ANON     7   /* anon/ (view_anon.c) */
#define ID_SOURCES  8   /* sources/ (view_sources.c) */
/*
 * Query directories (query/<level>/<Keyword=value>/...) have dynamic ids
 * >= QUERY_ID_BASE, from a hash of their path, mapped to the parsed query
 * by an in-memory table of the mount (fs/view_query.c); nothing about them
 * is stored. QUERY_ID_BASE + 0/1/2: query/studies, series, instances.
 * A query symlink's id is its target's id (< 2^QLINK_DEPTH_SHIFT) with the
 * link's depth below the mount root in bits QLINK_DEPTH_SHIFT.. .
 */
#define QUERY_ID_BASE ((uint64_t)1 << 57)
#define QLINK_DEPTH_SHIFT 48
#define ID_FIRST    16

#define INO_KIND_BITS 5
static inline uint64_t ino_make(uint64_t id, unsigned kind) { return id << INO_KIND_BITS | kind; }
static inline uint64_t ino_id(uint64_t ino) { return ino >> INO_KIND_BITS; }
static inline unsigned ino_kind(uint64_t ino) { return (unsigned)(ino & (KIND_MAX - 1)); }

enum node_type {
	NODE_ROOT = 1, NODE_TOP = 2, NODE_PATIENT = 3, NODE_STUDY = 4,
	NODE_SERIES = 5, NODE_INSTANCE = 6,
};

/* node_rec.flags: the node is of anon/ (its files are de-identified:
 * index/dicom/deid.h, fs/kind_anon.c) */
#define NODE_F_ANON 1
/* node_rec.flags: a folder of sources/, or a file node of it that is no
 * instance of patients/ (view_sources.c) */
#define NODE_F_SOURCE 2

struct node_rec {
	uint8_t type;
	uint8_t flags;       /* NODE_F_* */
	uint8_t pad[2];
	uint32_t mode;       /* permission bits only */
	uint32_t uid, gid;
	uint32_t nlink;
	uint32_t name_len;
	uint32_t path_len;   /* instance: source relpath length */
	uint32_t pad2;
	uint64_t parent;     /* parent node id */
	int64_t mtime_ns;
	uint64_t size;       /* instance: source file size */
	uint64_t nchildren;
	/* a patient/study/series directory of patients/: the instances whose
	 * values its name shows (access.h A2: the name is seen only by who
	 * can read them); 0: none (names made of UIDs every instance below
	 * carries, such as uids/) */
	uint64_t name_src[2];
	/* followed by name (name_len bytes), then relpath (path_len bytes) */
};

/* A node as read from the index; pointers stay valid while mounted. */
struct node_view {
	const struct node_rec *rec;
	const char *name;
	const char *relpath;
};

struct view;

struct index_opts {
	const char *archive;     /* as given */
	const char *path;        /* index directory, or NULL for the default */
	int scan_threads;        /* 0: default */
	int follow_symlinks;     /* follow symlinks leaving the archive */
	int progress;            /* 0 quiet, 1 '\r' line (tty), 2 plain lines */
	uint32_t kinds;          /* bit k set: file kind k is served (fs/ sets it
				  * from its kinds table); the tree lists only
				  * those */
	const struct view *const *views; /* the top-level views, NULL-terminated
				  * (view.h); NULL: view_registry */
	const char *worker_exe;  /* parse in "exe --parse-worker" processes, so a
				  * parser crash or hang costs one file; NULL:
				  * parse in threads of this process */
	const uint32_t *extra_tags; /* -o index_tags: indexed on top of
				  * dfs_tags[] (any order, duplicates ok) */
	size_t n_extra_tags;
	int live;                /* the mount writes changes (index_live_start):
				  * index_reopen opens the environment writable */
	struct source_opts source; /* a server's options (source.h); its
				  * follow_symlinks is the field above */
	/* anon/ (view_anon.c): the key file (-o anon_key; NULL: "anon.key"
	 * made once beside the index), and whether instances with burned-in
	 * annotation are shown (-o anon_keep_burned_in) */
	const char *anon_key_file;
	int anon_keep_burned_in;
	/* -o build_mem: bytes the tree of a first build may hold (I13); 0:
	 * the default (1 GiB) */
	uint64_t build_mem;
};

struct index_stats {
	uint64_t files_seen, files_parsed, files_removed;
	uint64_t instances, patients, studies, series;
	uint64_t skipped, errors, duplicates;
	double scan_seconds, files_per_second;
	double walk_seconds, parse_seconds, tree_seconds, commit_seconds;
	double tree_cpu_seconds;  /* CPU time of the tree phase (contention-free) */
	uint64_t tree_parts;      /* the mount's update: parts of its tree (I13) */
	int tree_rebuilt, index_fresh, private_index;
	int tags_reindexed;      /* the indexed tag set grew: all re-parsed */
};

struct index;

/*
 * index_open: resolve the archive and index paths, create the index
 * directory, take the update lock and open (or rebuild) the environment.
 * Returns 0, -ENOENT/-ENOTDIR/-EACCES for the archive (DFS exit 2),
 * or another negative code for the index (exit 4); msg gets one line.
 */
int index_open(struct index **out, const struct index_opts *o, char *msg,
	       size_t msglen);
/* Scan the archive and bring the index and the tree up to date. */
int index_update(struct index *ix, struct index_stats *st, char *msg,
		 size_t msglen);
/*
 * The parser process: "exe --parse-worker ARCHIVE TAGS [OPTS]" calls this
 * (TAGS: the indexed tags, comma-separated GGGGEEEE, ascending; OPTS: the
 * source's options, source_opts_arg(), or NULL). Reads jobs on
 * stdin, answers records on stdout, until end of input. Returns an exit code.
 */
int index_parse_worker_main(const char *archive, const char *tags, char *srcopts);

/*
 * I5: on (1), the mount serves: "serving" in the index directory is held
 * shared until off (0), called as soon as the FUSE loop ends, before the
 * mount closes. A new mount that finds the lock busy while nobody serves
 * waits for it (up to 10 s) instead of building a private index: the
 * holder is closing (umount, then mount again) or still indexing.
 * 0 or a negative errno (the mount serves anyway). Main thread.
 */
int index_serving(struct index *ix, int on);

/* Close the LMDB environment (before fork) / reopen it read-only after. */
void index_close_env(struct index *ix);
/*
 * dicomfs --list-indexes / --prune-indexes (store.c): the index
 * directories under the default cache root (store_dir: <cache>/dicomfs/NAME,
 * this user's), one TSV line each to out (index, archive, size_mib,
 * last_used, format, archive_exists, in_use[, action]). prune removes
 * those whose archive folder is gone, and with older_days >= 0 those not
 * used for older_days days; never one in use (its "lock" held by a mount
 * or an update, I5; it is held while checked, so no mount starts on it
 * meanwhile) and never one holding files dicomfs does not make. 0, or a
 * negative errno with msg one line.
 */
int index_cache_list(FILE *out, int prune, long older_days, char *msg, size_t msglen);
int index_reopen(struct index *ix);
void index_free(struct index *ix);

const char *index_path(const struct index *ix);
int index_archive_fd(const struct index *ix);
/* Where the archive's bytes come from (source.h); valid until index_free. */
struct source;
const struct source *index_source(const struct index *ix);
const struct index_stats *index_stats(const struct index *ix);

int index_node(struct index *ix, uint64_t id, struct node_view *nv);
int index_lookup(struct index *ix, uint64_t parent_id, const char *name,
		 uint64_t *ino);
/* Calls fn for entries from position pos on; fn returns nonzero to stop. */
typedef int (*index_dirent_fn)(void *ctx, uint64_t ino, const char *name,
			       size_t namelen, uint64_t next_pos);
int index_readdir(struct index *ix, uint64_t dir_id, uint64_t pos,
		  index_dirent_fn fn, void *ctx);
/* The id of the sources/ directory that lists the file at relpath
 * (ID_SOURCES for a file at the archive's top): 0, -ENOENT (no such
 * directory in this snapshot) or -EIO. */
int index_source_dir(struct index *ix, const char *relpath, size_t len, uint64_t *dir_id);
/* The file record of an instance (see record.h). */
int index_file_record(struct index *ix, const char *relpath, size_t len,
		      const void **val, size_t *vlen);
/* Calls fn for every file record (relpath order, pointers valid while
 * mounted); fn returns nonzero to stop. */
typedef int (*index_file_fn)(void *ctx, const char *relpath, size_t len,
			     const void *val, size_t vlen);
int index_files_scan(struct index *ix, index_file_fn fn, void *ctx);

/* anon/: the de-identification key of this mount (view_anon.c) */
struct deid_key;
const struct deid_key *index_anon_key(const struct index *ix);

/* The tags the index holds values of (ascending; valid while mounted). */
void index_tags(const struct index *ix, const uint32_t **tags, size_t *n);

/* End of a request (I6): this thread's snapshot is released. */
void index_request_end(struct index *ix);
/* A snapshot that outlives requests (I6): this thread's current read
 * transaction, handed over (the thread begins a new one on its next use).
 * Pointers read in it stay valid until index_snap_free (any thread). NULL
 * when none could be begun. index_snap_id: the committed generation it
 * sees (equal ids: the same data). */
struct index_snap;
struct index_snap *index_snap_take(struct index *ix);
uint64_t index_snap_id(const struct index_snap *s);
void index_snap_free(struct index_snap *s);

/*
 * Live updates (I9, live.c). index_live_start: after index_reopen (in the
 * serving process, after fork), with opts.live set: start the live thread,
 * which starts the source's watch (so the mount answers while the watches
 * are added; the watch's catch-up, source.h R8, reports what changed since
 * the mount's walk); rescan_s > 0 also re-walks the whole archive
 * every rescan_s seconds (and is the fallback, at LIVE_RESCAN_FALLBACK s,
 * when the watch cannot start: no watch op, out of inotify watches).
 * ops are called on the live thread after each commit. 0 or negative
 * errno (msg one line). index_live_stop: stop it (before index_free; the
 * callbacks are not called after it returns); safe when not started.
 * index_live_note: queue a path as a watch would (any thread).
 * DICOMFS_NO_WATCH=1 in the environment (tests, benchmarks): no watch and
 * no fallback polling; only -o rescan finds changes. DICOMFS_WATCH_DELAY_MS=N
 * (tests): the watch starts N ms late.
 */
#define LIVE_QUIET_MS 100
#define LIVE_MAX_WAIT_MS 700
#define LIVE_STABLE_MS 100
#define LIVE_HIDDEN_MS 1000   /* ".name": a temporary name (rsync, cp + mv) */
#define LIVE_RESCAN_FALLBACK 30
struct index_applied {
	uint64_t generation;     /* batches committed so far */
	size_t parsed, removed;  /* files re-parsed, records removed */
	uint64_t feed_lines;     /* feed lines written */
	const uint64_t *updated; /* ids of instances re-indexed in place (same
				  * path, so same inodes: their content changed) */
	size_t nupdated;
	double seconds;          /* walk + parse + tree + commit + diff */
	double parse_seconds, tree_seconds, commit_seconds;   /* parts of it */
	double tree_cpu_seconds; /* CPU time of the tree phase (contention-free) */
};
struct index_live_ops {
	/* a name that differs between the old and the new tree: in directory
	 * parent_id, name (not NUL-terminated) maps old_ino -> new_ino (0:
	 * absent). Called for every difference, after the commit. */
	void (*entry)(void *ctx, uint64_t parent_id, const char *name, size_t nl,
		      uint64_t old_ino, uint64_t new_ino);
	/* after the entries of one batch */
	void (*applied)(void *ctx, const struct index_applied *a);
	void *ctx;
	/* the LMDB map is full and must grow (store.h S3): let go of every
	 * long-lived snapshot (index_snap_take) now; may be NULL */
	void (*release)(void *ctx);
};
int index_live_start(struct index *ix, int rescan_s, const struct index_live_ops *ops,
		     char *msg, size_t msglen);
void index_live_stop(struct index *ix);
void index_live_note(struct index *ix, const char *rel, size_t rel_len);
/* 1 while the source's watch serves (0: polling only, or not live) */
int index_live_watching(const struct index *ix);

/*
 * The change feed (I10), read in this thread's snapshot (I6): the stream
 * .dicomfs/changes.jsonl is bytes [0, end); lines with seq >= first_seq
 * start at first_off and later, what is before first_off reads as '\n'.
 */
struct index_feed {
	uint64_t first_seq, last_seq, first_off, end;
};
int index_feed_info(struct index *ix, struct index_feed *f);
/* up to len bytes of the stream from pos into buf; *got (short at end) */
int index_feed_read(struct index *ix, uint64_t pos, char *buf, size_t len, size_t *got);
/* the offset of the first line with seq > after (end when none) */
int index_feed_offset(struct index *ix, uint64_t after, uint64_t *off);

/* The texts of .dicomfs/ and the runtime problems: report.h. */
#include "report.h"

#endif
