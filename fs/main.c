/*
 * main.c - command line, start-up and the FUSE session.
 *
 * Start-up order: parse options and check every value, then the FUSE
 * options (fuse_session_new: a typo exits 1 before any indexing); open the
 * log file; check archive and mountpoint; open and update the index (the
 * mount is ready only when the index is); close LMDB (it must not cross
 * fork); mount; daemonize; reopen LMDB; run the loop.
 *
 * Signals: SIGTERM, SIGINT unmount (libfuse's handlers); SIGHUP re-walks
 * the archive once (one live rescan pass, index.h I9) instead of libfuse's
 * unmount; SIGPIPE is ignored.
 *
 * Exit status (documented in the README and the man page):
 *   0 success, 1 usage, 2 archive missing or unreadable,
 *   3 mountpoint missing, not a directory or busy, 4 index unusable,
 *   5 FUSE session or mount failure.
 */
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "access.h"
#include "catalog.h"
#include "cpulat.h"
#include "fs.h"
#include "shared_buf.h"
#include "error.h"
#include "fdbudget.h"
#include "log.h"
#include "tags.h"

enum {
	EXIT_USAGE = 1, EXIT_ARCHIVE = 2, EXIT_MOUNTPOINT = 3, EXIT_INDEX = 4,
	EXIT_FUSE = 5,
};

struct options {
	char *archive;
	char *mountpoint;   /* as given, for error reporting */
	char *index;
	int scan_threads;
	int follow_symlinks;
	int quiet;
	char *cache_size;   /* MB of decoded pixels kept (default 256) */
	char *build_mem;    /* MB the tree of a first build may hold (default 1024) */
	char *index_tags;   /* extra indexed tags: Keyword,GGGGEEEE,... */
	char *max_image;    /* MB: largest image decoded / previewed in memory */
	char *open_size;    /* MB of generated content of open files */
	int max_threads;    /* FUSE threads at most (default 128) */
	int rescan;         /* also re-walk the archive every N s (live.c) */
	/* a DICOMweb server as the archive (index/source_dicomweb.c) */
	char *cache_dir;    /* its instance cache (default: <index>/cache) */
	char *cache_disk;   /* MB the cache may hold (default 1024) */
	char *cafile;       /* CA certificates for TLS */
	char *bearer_token_file;
	char *netrc;        /* basic auth from this netrc file */
	int web_timeout;    /* s: an uncached read's deadline (default 30) */
	char *anon_key;     /* anon/'s key file (view_anon.c) */
	int anon_keep_burned_in;
	int decode_ahead;   /* kind_pixels.c P10: on by default */
	int no_decode_ahead;
	int no_read_ahead;
	char *opens;        /* "auto" or "each" (fs.h Z1) */
	/* issue 16: which derived files are listed, where xattrs are */
	char *files;        /* dcm,json,npy,png,level,fhir,volume (kinds.c) */
	int only_dcm;       /* = files=dcm */
	char *xattrs;       /* "all" or "dcm" (xattr.c X4) */
	char *log;          /* -o log=FILE (log.h) */
	char *cpu_latency;  /* µs, "auto" (the default) or "off" (cpulat.h L4) */
};

#define OPT(t, p) { t, offsetof(struct options, p), 1 }
static const struct fuse_opt dfs_opts[] = {
	OPT("index=%s", index),
	OPT("scan_threads=%d", scan_threads),
	OPT("follow_symlinks", follow_symlinks),
	OPT("quiet", quiet),
	OPT("cache_size=%s", cache_size),
	OPT("build_mem=%s", build_mem),
	OPT("index_tags=%s", index_tags),
	OPT("max_image=%s", max_image),
	OPT("open_size=%s", open_size),
	OPT("max_threads=%d", max_threads),
	OPT("rescan=%d", rescan),
	OPT("cache_dir=%s", cache_dir),
	OPT("cache_disk=%s", cache_disk),
	OPT("cafile=%s", cafile),
	OPT("bearer_token_file=%s", bearer_token_file),
	OPT("netrc=%s", netrc),
	OPT("web_timeout=%d", web_timeout),
	OPT("anon_key=%s", anon_key),
	OPT("anon_keep_burned_in", anon_keep_burned_in),
	OPT("decode_ahead", decode_ahead),
	OPT("no_decode_ahead", no_decode_ahead),
	OPT("no_read_ahead", no_read_ahead),
	OPT("opens=%s", opens),
	OPT("files=%s", files),
	OPT("only_dcm", only_dcm),
	OPT("xattrs=%s", xattrs),
	OPT("log=%s", log),
	OPT("cpu_latency=%s", cpu_latency),
	FUSE_OPT_END
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;
	(void)outargs;
	if (key == FUSE_OPT_KEY_NONOPT && !o->archive) {
		o->archive = strdup(arg);
		return 0;
	}
	if (key == FUSE_OPT_KEY_NONOPT && !o->mountpoint)
		o->mountpoint = strdup(arg);
	/* -o index_tags=A,B,C: fuse_opt splits at the commas; the parts after
	 * the first (a keyword, which starts upper case, or GGGGEEEE) are ours */
	if (key == FUSE_OPT_KEY_OPT && o->index_tags && !strchr(arg, '=') &&
	    ((arg[0] >= 'A' && arg[0] <= 'Z') ||
	     (strlen(arg) == 8 && strspn(arg, "0123456789abcdefABCDEF") == 8))) {
		char *n = NULL;
		if (asprintf(&n, "%s,%s", o->index_tags, arg) < 0)
			return -1;
		free(o->index_tags);
		o->index_tags = n;
		return 0;
	}
	/* -o files=dcm,npy: the same, for the names of file groups (kinds.c) */
	if (key == FUSE_OPT_KEY_OPT && o->files && dfs_files_group(arg, strlen(arg))) {
		char *n = NULL;
		if (asprintf(&n, "%s,%s", o->files, arg) < 0)
			return -1;
		free(o->files);
		o->files = n;
		return 0;
	}
	return 1;
}

static void usage(const char *prog)
{
	printf("usage: %s [options] ARCHIVE MOUNTPOINT\n\n"
	       "Mount the DICOM files under ARCHIVE read-only at MOUNTPOINT as a\n"
	       "patients/<patient>/<study>/<series>/<instance>.dcm tree.\n\n"
	       "dicomfs options:\n"
	       "    -o index=DIR           where the LMDB index lives (default: a per-archive\n"
	       "                           directory under $XDG_CACHE_HOME/dicomfs, or\n"
	       "                           /var/cache/dicomfs for root)\n"
	       "    -o scan_threads=N      header parsers (default: twice the number of CPUs)\n"
	       "    -o follow_symlinks     follow symlinks that leave the archive\n"
	       "    -o quiet               no indexing progress on stderr\n"
	       "    -o cache_size=MB       decoded pixels of compressed instances kept in\n"
	       "                           memory for .npy/.png; decodes in progress and\n"
	       "                           open .npy files count against it (default: 256)\n"
	       "    -o max_image=MB        larger decoded images (and .png frames) are\n"
	       "                           refused with EIO (default: cache_size/2)\n"
	       "    -o open_size=MB        generated content (level files, .json, .png)\n"
	       "                           of open files, shared per file; query results\n"
	       "                           within a quarter of it (default: 256)\n"
	       "    -o build_mem=MB        the memory a first index build's tree may take:\n"
	       "                           a larger archive's is built in parts, patients\n"
	       "                           at a time (default: 1024)\n"
	       "    -o max_threads=N       FUSE threads at most; half of them may wait on\n"
	       "                           pixel decoders (default: 128)\n"
	       "    -o index_tags=LIST     also index these tags (Keyword or GGGGEEEE,\n"
	       "                           private ones too), so query/ can match them\n"
	       "    -o rescan=SECONDS      also re-walk the archive every SECONDS, for\n"
	       "                           folders where inotify sees nothing (network file\n"
	       "                           systems); without it, changes are watched with\n"
	       "                           inotify and polled every 30 s only when inotify\n"
	       "                           cannot serve (watch limit reached)\n"
	       "A DICOMweb server as ARCHIVE (http://host/dicom-web or https://...):\n"
	       "    -o cache_dir=DIR       instances read are kept here (default: the\n"
	       "                           index directory's cache/)\n"
	       "    -o cache_disk=MB       bound of that cache (default: 1024)\n"
	       "    -o cafile=FILE         CA certificates to verify the server (TLS\n"
	       "                           verification is always on)\n"
	       "    -o bearer_token_file=FILE  send \"Authorization: Bearer <its content>\",\n"
	       "                           re-read when the file changes\n"
	       "    -o netrc=FILE          basic auth from this netrc file (default ~/.netrc)\n"
	       "    -o web_timeout=S       an uncached read fails (EIO) after S seconds\n"
	       "                           (default: 30)\n"
	       "    -o anon_key=FILE       the secret of anon/'s pseudonyms (default: a\n"
	       "                           random key made once beside the index, 0600)\n"
	       "    -o anon_keep_burned_in also show instances with burned-in annotation\n"
	       "                           (or US / secondary capture without the\n"
	       "                           attribute) in anon/\n"
	       "    -o files=LIST          which files are listed: dcm and any of json, npy,\n"
	       "                           png, level (series/study/patient.json), fhir,\n"
	       "                           volume (default: all of them)\n"
	       "    -o only_dcm            the same as -o files=dcm (backups: README)\n"
	       "    -o xattrs=all          user.dicom.* attributes on every file (default:\n"
	       "                           on directories and .dcm files only)\n"
	       "    -o no_decode_ahead     do not decode the rest of a series on a spare\n"
	       "                           decoder after a decode (on by default; README)\n"
	       "    -o no_read_ahead       do not push the next .dcm files of a series into\n"
	       "                           the page cache after a first read (README)\n"
	       "    -o opens=each          every open is a request to dicomfs (default auto:\n"
	       "                           none without allow_other; README)\n"
	       "    -o cpu_latency=US|auto|off  while requests arrive, ask idle CPUs to\n"
	       "                           wake within US microseconds (default auto: 0 in\n"
	       "                           a VM with haltpoll, else the shallowest sleep's;\n"
	       "                           needs root); off leaves their idle policy alone\n"
	       "    -o log=FILE            append every message to FILE (time-stamped);\n"
	       "                           without it messages go to stderr, and to\n"
	       "                           syslog once in the background\n"
	       "    --version              print the version\n"
	       "    --list-indexes         list the cached indexes (archive, size, last use)\n"
	       "    --prune-indexes [--older-than DAYS]\n"
	       "                           remove cached indexes whose archive is gone (or\n"
	       "                           unused for DAYS days); never one in use\n\n"
	       "signals: HUP re-walks the archive, TERM and INT unmount\n"
	       "exit status: 0 ok, 1 usage, 2 archive, 3 mountpoint, 4 index, 5 fuse\n"
	       "see dicomfs(1) for views, query syntax, files and environment\n\n",
	       prog);
}

#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 12)
/* libfuse >= 3.12: the loop's thread bound (default 10) is set only through
 * the opaque config of API 3.12; this file is compiled against API 3.5
 * (fs.h), where that config type is named like the old struct, so the
 * pointer is only passed along, never dereferenced. */
int fuse_session_loop_mt_312(struct fuse_session *se, struct fuse_loop_config *config);
#endif

/* The multi-threaded loop with at most max_threads threads, so that FUSE
 * threads waiting on decoders (kind_pixels.c P5: at most half of them)
 * leave threads for every other request. */
static int run_loop_mt(struct fuse_session *se, const struct fuse_cmdline_opts *copts,
		       unsigned max_threads)
{
	unsigned idle = copts->max_idle_threads == UINT_MAX ? 10 : copts->max_idle_threads;
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 12)
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	if (cfg) {
		fuse_loop_cfg_set_clone_fd(cfg, (unsigned)copts->clone_fd);
		fuse_loop_cfg_set_idle_threads(cfg, idle);
		fuse_loop_cfg_set_max_threads(cfg, max_threads);
		int rc = fuse_session_loop_mt_312(se, cfg);
		fuse_loop_cfg_destroy(cfg);
		return rc;
	}
#endif
	(void)max_threads;
	struct fuse_loop_config old = { .clone_fd = copts->clone_fd, .max_idle_threads = idle };
	return fuse_session_loop_mt(se, &old);
}

/* A start-up failure: msg, and when it is short of memory or threads
 * under an address-space limit (ulimit -v), that the limit is why. */
static void log_limited(const char *msg, int rc)
{
	struct rlimit rl;
	if ((rc == -ENOMEM || rc == -EAGAIN) && getrlimit(RLIMIT_AS, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY)
		dfs_log("%s (the address-space limit RLIMIT_AS, ulimit -v, is %llu MiB: raise it)",
			msg, (unsigned long long)(rl.rlim_cur >> 20));
	else
		dfs_log("%s", msg);
}

/* Is path already a mount point (someone mounted there)? */
static int mountpoint_busy(const char *real)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192];
	int busy = 0;
	if (!f)
		return 0;
	while (!busy && fgets(line, sizeof(line), f)) {
		char mp[PATH_MAX];
		/* id parent major:minor root mountpoint ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		/* unescape \040 etc. */
		char un[PATH_MAX];
		size_t o = 0;
		for (size_t i = 0; mp[i] && o + 1 < sizeof(un); i++) {
			if (mp[i] == '\\' && mp[i + 1] && mp[i + 2] && mp[i + 3]) {
				un[o++] = (char)((mp[i + 1] - '0') * 64 + (mp[i + 2] - '0') * 8 +
						 (mp[i + 3] - '0'));
				i += 3;
			} else {
				un[o++] = mp[i];
			}
		}
		un[o] = 0;
		busy = strcmp(un, real) == 0;
	}
	fclose(f);
	return busy;
}

/* SIGHUP: one rescan pass (index.h I9). The handler only writes to a
 * pipe (async-signal-safe); a thread of the mount reads it. The pipe's
 * write end is the one process-wide value a handler can reach. */
static int hup_pipe_w = -1;

static void on_hup(int sig)
{
	int e = errno;
	char c = 'H';
	(void)sig;
	if (hup_pipe_w >= 0 && write(hup_pipe_w, &c, 1) < 0) {
		/* full: a rescan is pending anyway */
	}
	errno = e;
}

struct hup_thread {
	struct dfs *fs;
	int rfd, wfd;
	pthread_t th;
	int started;
};

static void *hup_main(void *arg)
{
	struct hup_thread *h = arg;
	for (;;) {
		char c[64];
		ssize_t n = read(h->rfd, c, sizeof(c));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || memchr(c, 'Q', (size_t)n))
			return NULL;
		dfs_log("SIGHUP: re-walking the archive for changes (one rescan pass)");
		index_live_note(h->fs->ix, "", 0);
	}
}

/* after fuse_set_signal_handlers (which unmounts on HUP): our own HUP */
static int hup_start(struct hup_thread *h, struct dfs *fs)
{
	int p[2];
	h->fs = fs;
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	h->rfd = p[0];
	h->wfd = p[1];
	if (pthread_create(&h->th, NULL, hup_main, h)) {
		close(p[0]);
		close(p[1]);
		return -EAGAIN;
	}
	h->started = 1;
	hup_pipe_w = p[1];
	struct sigaction sa = { 0 };
	sa.sa_handler = on_hup;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
	return 0;
}

static void hup_stop(struct hup_thread *h)
{
	if (!h->started)
		return;
	struct sigaction sa = { 0 };
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	hup_pipe_w = -1;
	char q = 'Q';
	if (write(h->wfd, &q, 1) < 0) {
		/* the thread reads EOF below */
	}
	close(h->wfd);
	pthread_join(h->th, NULL);
	close(h->rfd);
	h->started = 0;
}

/* dicomfs --list-indexes | --prune-indexes [--older-than DAYS] */
static int cache_command(int argc, char *argv[])
{
	int prune = !strcmp(argv[1], "--prune-indexes");
	long days = -1;
	char msg[PATH_MAX + 256] = "";
	if (prune && argc == 4 && !strcmp(argv[2], "--older-than")) {
		char *end;
		errno = 0;
		days = strtol(argv[3], &end, 10);
		if (errno || end == argv[3] || *end || days < 0) {
			fprintf(stderr, "dicomfs: bad --older-than %s (days, 0 or more)\n", argv[3]);
			return EXIT_USAGE;
		}
	} else if (argc != 2) {
		fprintf(stderr, "dicomfs: usage: %s --list-indexes | --prune-indexes [--older-than DAYS]\n",
			argv[0]);
		return EXIT_USAGE;
	}
	int rc = index_cache_list(stdout, prune, days, msg, sizeof(msg));
	fflush(stdout);
	if (rc) {
		fprintf(stderr, "dicomfs: %s\n", msg);
		return EXIT_INDEX;
	}
	return 0;
}

/* An absolute path for -o log=FILE (the daemon works in /). */
static char *abs_path(const char *p)
{
	char cwd[PATH_MAX], *out = NULL;
	if (p[0] == '/')
		return strdup(p);
	if (!getcwd(cwd, sizeof(cwd)) || asprintf(&out, "%s/%s", cwd, p) < 0)
		return NULL;
	return out;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts copts = { 0 };
	struct options o = { 0 };
	struct dfs fs = { 0 };
	struct fuse_session *se = NULL;
	struct index_opts io = { 0 };
	char msg[PATH_MAX + 256] = "";
	int ret = EXIT_USAGE, rc;

	if (argc >= 3 && argc <= 5 && strcmp(argv[1], "--parse-worker") == 0)
		return index_parse_worker_main(argv[2], argc >= 4 ? argv[3] : NULL,
					       argc == 5 ? argv[4] : NULL);
	if (argc == 2 && strcmp(argv[1], "--decode-worker") == 0)
		return dfs_decode_worker_main();
	if (argc >= 2 && (!strcmp(argv[1], "--list-indexes") || !strcmp(argv[1], "--prune-indexes")))
		return cache_command(argc, argv);
	struct hup_thread hup = { 0 };
	if (fuse_opt_parse(&args, &o, dfs_opts, opt_proc) == -1)
		goto free_args;
	if (fuse_parse_cmdline(&args, &copts) != 0) {
		/* libfuse checks the mountpoint itself: keep our exit codes */
		struct stat mst;
		if (o.mountpoint && stat(o.mountpoint, &mst))
			ret = EXIT_MOUNTPOINT;
		goto free_args;
	}
	if (copts.show_help) {
		usage(argv[0]);
		printf("FUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto free_args;
	}
	if (copts.show_version) {
		printf("dicomfs %s\n", PACKAGE_VERSION);
		fuse_lowlevel_version();
		ret = 0;
		goto free_args;
	}
	if (!o.archive || !copts.mountpoint) {
		fprintf(stderr, "dicomfs: usage: %s [options] ARCHIVE MOUNTPOINT (see --help)\n",
			argv[0]);
		goto free_args;
	}

	fs.cache_bytes = (uint64_t)256 << 20;
	if (o.cache_size) {
		char *end;
		errno = 0;
		unsigned long long mb = strtoull(o.cache_size, &end, 10);
		if (errno || end == o.cache_size || *end || mb > ((uint64_t)1 << 40)) {
			fprintf(stderr, "dicomfs: bad -o cache_size=%s (megabytes)\n", o.cache_size);
			ret = EXIT_USAGE;
			goto free_args;
		}
		fs.cache_bytes = (uint64_t)mb << 20;
	}
	fs.max_threads = o.max_threads > 0 ? (unsigned)o.max_threads : 128;
	fdb_init();   /* fdbudget.h F1, F2: threads that fit the fd limit */
	fs.max_threads_asked = fs.max_threads;
	fs.max_threads = fdb_threads(fs.max_threads);
	fs.decode_ahead = !o.no_decode_ahead;   /* -o decode_ahead: the default */
	{
		/* readahead.c RA1: DICOMFS_NO_AHEAD=1 turns it off as well */
		const char *na = getenv("DICOMFS_NO_AHEAD");
		fs.read_ahead = !o.no_read_ahead && !(na && *na && strcmp(na, "0"));
	}
	if (o.opens && strcmp(o.opens, "auto") && strcmp(o.opens, "each")) {
		fprintf(stderr, "dicomfs: bad -o opens=%s (auto or each)\n", o.opens);
		ret = EXIT_USAGE;
		goto free_args;
	}
	fs.opens_each = o.opens && !strcmp(o.opens, "each");
	long cpu_us = -2;   /* cpulat.h L4; -1: off, -2: auto */
	if (o.cpu_latency && !strcmp(o.cpu_latency, "off")) {
		cpu_us = -1;
	} else if (o.cpu_latency && strcmp(o.cpu_latency, "auto")) {
		char *end;
		errno = 0;
		cpu_us = strtol(o.cpu_latency, &end, 10);
		if (errno || end == o.cpu_latency || *end || cpu_us < 0 || cpu_us > 1000000) {
			fprintf(stderr, "dicomfs: bad -o cpu_latency=%s (microseconds, auto or off)\n",
				o.cpu_latency);
			ret = EXIT_USAGE;
			goto free_args;
		}
	}
	if (o.max_threads < 0 || o.max_threads > 100000) {
		fprintf(stderr, "dicomfs: bad -o max_threads=%d\n", o.max_threads);
		ret = EXIT_USAGE;
		goto free_args;
	}
	fs.max_image = fs.cache_bytes / 2;
	fs.open_bytes = (uint64_t)256 << 20;
	struct { const char *name, *val; uint64_t *dst; } mbopts[] = {
		{ "max_image", o.max_image, &fs.max_image },
		{ "open_size", o.open_size, &fs.open_bytes },
		{ "build_mem", o.build_mem, &io.build_mem },
	};
	for (size_t i = 0; i < sizeof(mbopts) / sizeof(mbopts[0]); i++) {
		char *end;
		if (!mbopts[i].val)
			continue;
		errno = 0;
		unsigned long long mb = strtoull(mbopts[i].val, &end, 10);
		if (errno || end == mbopts[i].val || *end || mb > ((uint64_t)1 << 40)) {
			fprintf(stderr, "dicomfs: bad -o %s=%s (megabytes)\n", mbopts[i].name,
				mbopts[i].val);
			ret = EXIT_USAGE;
			goto free_args;
		}
		*mbopts[i].dst = (uint64_t)mb << 20;
	}
	if (o.cache_disk) {
		char *end;
		errno = 0;
		unsigned long long mb = strtoull(o.cache_disk, &end, 10);
		if (errno || end == o.cache_disk || *end || !mb || mb > ((uint64_t)1 << 40)) {
			fprintf(stderr, "dicomfs: bad -o cache_disk=%s (megabytes)\n", o.cache_disk);
			ret = EXIT_USAGE;
			goto free_args;
		}
		io.source.cache_bytes = (uint64_t)mb << 20;
	}
	io.source.cache_dir = o.cache_dir;
	io.source.cafile = o.cafile;
	io.source.bearer_token_file = o.bearer_token_file;
	io.source.netrc_file = o.netrc;
	if (o.web_timeout < 0 || o.web_timeout > 86400) {
		fprintf(stderr, "dicomfs: bad -o web_timeout=%d (seconds)\n", o.web_timeout);
		ret = EXIT_USAGE;
		goto free_args;
	}
	io.source.timeout_s = o.web_timeout;
	uint32_t *extra = NULL;
	size_t nextra = 0;
	if (o.index_tags && tags_parse_list(o.index_tags, &extra, &nextra, msg, sizeof(msg))) {
		fprintf(stderr, "dicomfs: %s\n", msg);
		ret = EXIT_USAGE;
		goto free_args;
	}
	io.extra_tags = extra;
	io.n_extra_tags = nextra;
	if (o.rescan < 0) {
		fprintf(stderr, "dicomfs: bad -o rescan=%d (seconds)\n", o.rescan);
		ret = EXIT_USAGE;
		goto free_args;
	}
	if (o.scan_threads < 0) {
		fprintf(stderr, "dicomfs: bad -o scan_threads=%d\n", o.scan_threads);
		ret = EXIT_USAGE;
		goto free_args;
	}
	int is_url = !strncasecmp(o.archive, "http://", 7) || !strncasecmp(o.archive, "https://", 8);

	/* The FUSE options too, before any indexing: fuse_session_new rejects
	 * unknown ones (libfuse prints which); it does not mount yet. */
	/* read-only, and the kernel checks permissions against our modes */
	/* fsname: the archive, as `mount` and `df` show it (',' escaped) */
	char fsname[2 * PATH_MAX + 16];
	size_t fl = (size_t)snprintf(fsname, sizeof(fsname), "-ofsname=");
	char *real = is_url ? NULL : realpath(o.archive, NULL);
	for (const char *p = real ? real : o.archive; *p && fl + 3 < sizeof(fsname); p++) {
		if (*p == ',' || *p == '\\')
			fsname[fl++] = '\\';
		fsname[fl++] = *p;
	}
	fsname[fl] = 0;
	free(real);
	if (fuse_opt_add_arg(&args, "-oro") || fuse_opt_add_arg(&args, "-odefault_permissions") ||
	    fuse_opt_add_arg(&args, fsname) || fuse_opt_add_arg(&args, "-osubtype=dicomfs")) {
		ret = EXIT_FUSE;
		goto free_args;
	}
	/* before fuse_session_new takes the mount options out of args */
	fs.allow_other = dfs_access_shared_opts(&args);
	se = fuse_session_new(&args, &dfs_ll_ops, sizeof(dfs_ll_ops), &fs);
	if (!se) {
		fprintf(stderr, "dicomfs: bad mount option (see the line above; dicomfs --help and dicomfs(1) list them)\n");
		ret = EXIT_USAGE;
		goto free_args;
	}

	/* from here on, every message also goes to the log file (log.h) */
	if (o.log) {
		char *lp = abs_path(o.log);
		rc = lp ? dfs_log_to_file(lp) : -ENOMEM;
		free(lp);
		if (rc) {
			fprintf(stderr, "dicomfs: -o log=%s: %s\n", o.log, strerror(-rc));
			ret = EXIT_USAGE;
			goto free_index;
		}
	}
	struct stat st;
	if (!is_url && stat(o.archive, &st)) {
		dfs_log("archive '%s': %s", o.archive, strerror(errno));
		ret = EXIT_ARCHIVE;
		goto free_index;
	}
	if (!is_url && !S_ISDIR(st.st_mode)) {
		dfs_log("archive '%s' is not a directory (give the folder that holds the DICOM files)",
			o.archive);
		ret = EXIT_ARCHIVE;
		goto free_index;
	}
	if (stat(copts.mountpoint, &st) || !S_ISDIR(st.st_mode)) {
		dfs_log("mountpoint '%s': %s", copts.mountpoint, strerror(errno ? errno : ENOTDIR));
		ret = EXIT_MOUNTPOINT;
		goto free_index;
	}
	if (mountpoint_busy(copts.mountpoint)) {
		dfs_log("mountpoint '%s' is busy (something is mounted there)", copts.mountpoint);
		ret = EXIT_MOUNTPOINT;
		goto free_index;
	}

	io.archive = o.archive;
	io.path = o.index;
	io.scan_threads = o.scan_threads;
	io.follow_symlinks = o.follow_symlinks;
	io.anon_key_file = o.anon_key;
	io.anon_keep_burned_in = o.anon_keep_burned_in;
	char exe[PATH_MAX];
	ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (el > 0) {
		exe[el] = 0;
		io.worker_exe = exe;
	}
	if (dfs_files_mask(o.only_dcm ? "dcm" : o.files, &io.kinds, msg, sizeof(msg)) ||
	    (o.only_dcm && o.files)) {
		fprintf(stderr, "dicomfs: %s\n", msg[0] ? msg : "-o only_dcm and -o files together");
		ret = EXIT_USAGE;
		goto free_args;
	}
	if (o.xattrs && strcmp(o.xattrs, "all") && strcmp(o.xattrs, "dcm")) {
		fprintf(stderr, "dicomfs: bad -o xattrs=%s (all or dcm)\n", o.xattrs);
		ret = EXIT_USAGE;
		goto free_args;
	}
	fs.xattrs_all = o.xattrs && !strcmp(o.xattrs, "all");
	io.progress = o.quiet ? 0 : (isatty(STDERR_FILENO) ? 1 : 2);
	io.live = 1;   /* the mount writes what changes (index.h I9) */
	rc = index_open(&fs.ix, &io, msg, sizeof(msg));
	if (rc) {
		dfs_log("%s", msg);
		ret = rc == -EROFS ? EXIT_INDEX : EXIT_ARCHIVE;
		goto free_index;
	}
	rc = index_update(fs.ix, NULL, msg, sizeof(msg));
	if (rc) {
		log_limited(msg, rc);
		ret = EXIT_INDEX;
		goto free_index;
	}
	{
		/* -o quiet: the summary for the log file only */
		const struct index_stats *s = index_stats(fs.ix);
		(o.quiet ? dfs_log_file_only : dfs_log)(
			"%llu files, %llu parsed, %llu instances in %llu patients / %llu studies / %llu series, "
			"%llu skipped, %llu errors, %llu duplicates (%.2f s, %.0f files/s)",
			(unsigned long long)s->files_seen, (unsigned long long)s->files_parsed,
			(unsigned long long)s->instances, (unsigned long long)s->patients,
			(unsigned long long)s->studies, (unsigned long long)s->series,
			(unsigned long long)s->skipped, (unsigned long long)s->errors,
			(unsigned long long)s->duplicates, s->scan_seconds, s->files_per_second);
	}
	index_close_env(fs.ix);
	/* the build's heap (records, stages, LMDB's dirty pages) is free now:
	 * give it back before the mount serves (bench_mountmem.sh) */
	malloc_trim(0);
	fs.src = index_source(fs.ix);
	/* per-mount pixel state; decoders start on first use (after daemonize) */
	rc = dfs_pixels_new(&fs, io.worker_exe);
	if (rc) {
		dfs_log("%s", dfs_strerror(rc));
		ret = EXIT_FUSE;
		goto free_index;
	}

	fs.timeout = 86400.0;
	if (dfs_level_init(&fs) || dfs_volume_init(&fs) || dfs_ra_new(&fs) ||
	    shared_bufs_new(fs.open_bytes, &fs.shared) || dfs_snaps_new(&fs)) {
		ret = EXIT_FUSE;
		goto free_index;
	}
	if (fuse_set_signal_handlers(se)) {
		ret = EXIT_FUSE;
		goto free_index;
	}
	if (fuse_session_mount(se, copts.mountpoint)) {
		dfs_log("cannot mount on '%s'", copts.mountpoint);
		ret = EXIT_MOUNTPOINT;
		goto remove_handlers;
	}
	fuse_daemonize(copts.foreground);
	if (!copts.foreground)
		dfs_log_use_syslog(1);   /* stderr is gone: syslog, unless -o log= */
	rc = index_reopen(fs.ix);
	if (rc) {
		dfs_log("cannot reopen index '%s': %s", index_path(fs.ix), dfs_strerror(rc));
		ret = EXIT_INDEX;
		goto unmount;
	}
	/* the catalog (built in the background, catalog.h C1) and query/ */
	if (catalog_start(&fs) || dfs_query_start(&fs)) {
		dfs_log("cannot start the catalog: out of memory");
		ret = EXIT_INDEX;
		goto unmount;
	}
	/* access.h: uniform or mixed archive; the mount owner sees all */
	fs.uid = getuid();
	fs.gid = getgid();
	fs.se = se;
	if (dfs_access_init(&fs)) {
		dfs_log("cannot start the access model: out of memory");
		ret = EXIT_INDEX;
		goto unmount;
	}
	/* the archive may change while mounted (index.h I9, live.c) */
	rc = dfs_live_start(&fs, o.rescan, msg, sizeof(msg));
	if (rc) {
		char line[600];
		snprintf(line, sizeof(line), "cannot watch the archive: %s",
			 msg[0] ? msg : dfs_strerror(rc));
		log_limited(line, rc);
		ret = EXIT_INDEX;
		goto unmount;
	}
	/* SIGHUP rescans instead of unmounting (after libfuse's handlers) */
	if (hup_start(&hup, &fs))
		dfs_log("cannot handle SIGHUP: it unmounts");
	/* the start-up reads of this thread must not pin a snapshot (I6) */
	index_request_end(fs.ix);
	fdb_serving();   /* fdbudget.h F6 */
	if (index_serving(fs.ix, 1))   /* index.h I5 */
		dfs_log("cannot mark the index served: another mount may wait for it");
	if (cpu_us != -1) {
		/* cpulat.h: after daemonize (its thread), before any request */
		char why[300], how[128] = "as asked";
		if (cpu_us == -2)
			cpu_us = cpulat_auto_us(NULL, how, sizeof(how));
		fs.cpulat = cpulat_start(NULL, (int32_t)cpu_us, 0, why, sizeof(why));
		if (!fs.cpulat && why[0])
			dfs_log_file_only("cpu_latency: off (%s)", why);
		else if (fs.cpulat)
			dfs_log_file_only("cpu_latency: %ld us while requests arrive (%s)", cpu_us, how);
	}
	if (copts.singlethread) {
		rc = fuse_session_loop(se);
	} else {
		rc = run_loop_mt(se, &copts, fs.max_threads);
	}
	index_serving(fs.ix, 0);   /* unmounted: a new mount may wait for the index */
	cpulat_stop(fs.cpulat);
	fs.cpulat = NULL;
	{
		/* tests: a mount slow to close (its last sync, I12) */
		const char *cd = getenv("DICOMFS_CLOSE_DELAY_MS");
		long ms = cd ? strtol(cd, NULL, 10) : 0;
		if (ms > 0 && ms <= 60000)
			nanosleep(&(struct timespec){ ms / 1000, ms % 1000 * 1000000L }, NULL);
	}
	hup_stop(&hup);
	dfs_live_stop(&fs);
	dfs_ra_stop(&fs);   /* before the session goes (readahead.c RA5) */
	ret = rc ? EXIT_FUSE : 0;
unmount:
	dfs_access_fini(&fs);   /* its thread notifies the session (A7) */
	fuse_session_unmount(se);
remove_handlers:
	fuse_remove_signal_handlers(se);
free_index:
	hup_stop(&hup);
	dfs_live_stop(&fs);
	dfs_query_stop(&fs);
	catalog_stop(&fs);
	dfs_ra_free(&fs);
	dfs_pixels_free(&fs);
	dfs_level_fini(&fs);
	dfs_volume_fini(&fs);
	dfs_access_fini(&fs);
	shared_bufs_free(fs.shared);
	dfs_snaps_free(&fs);
	fs.shared = NULL;
	index_free(fs.ix);
	if (se)
		fuse_session_destroy(se);
free_args:
	free(copts.mountpoint);
	free(o.archive);
	free(o.mountpoint);
	free(o.index);
	free(o.cache_size);
	free(o.build_mem);
	free(o.index_tags);
	free(o.anon_key);
	free(o.files);
	free(o.xattrs);
	free(o.max_image);
	free(o.open_size);
	free(o.opens);
	free(o.cache_dir);
	free(o.cache_disk);
	free(o.cafile);
	free(o.bearer_token_file);
	free(o.netrc);
	free(o.log);
	free(o.cpu_latency);
	free((void *)io.extra_tags);
	fuse_opt_free_args(&args);
	return ret;
}
