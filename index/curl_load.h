/*
 * curl_load.h - libcurl, loaded on first use by the DICOMweb source.
 *
 * Only source_dicomweb.c talks HTTP, but a program linked with libcurl
 * makes every dicomfs process (the mount and each parser and decoder
 * process, exec'd from the same binary) map libcurl and the ~28 libraries
 * it needs (TLS, Kerberos, LDAP, HTTP/2, ...) at start: ~4-5 ms of CPU
 * and ~500 page faults per process (issue 17; README, Benchmarks). So no
 * dicomfs program links libcurl; this module dlopen()s it the first time
 * a DICOMweb source is made and hands out a table of the libcurl
 * functions dicomfs calls.
 * dicomfs still compiles against <curl/curl.h> (types, CURLOPT_*, CURLE_*).
 *
 * Design notes (invariants; code cites them as L1..L5)
 * (L1) Once per process: the first curlload_get() does
 *      dlopen(CURLLOAD_SONAME, RTLD_NOW | RTLD_LOCAL), dlsym() of every
 *      member of struct curlload (under its libcurl name, curl_<member>),
 *      then curl_global_init(CURL_GLOBAL_DEFAULT), all under one
 *      pthread_once: libcurl's global init (not thread-safe before 7.84)
 *      runs once, before any handle. The library is never unloaded and
 *      curl_global_cleanup is never called (the handle lives until exit).
 * (L2) Nothing else in dicomfs loads libcurl: a process that never calls
 *      curlload_get (a local-folder mount, its parser and decoder
 *      processes, `dicomfs --version`, the unit tests) never maps it.
 *      source_dicomweb.c calls it only for a spec it takes (an http:// or
 *      https:// URL), after checking the URL's form.
 * (L3) Errors: curlload_get returns 0, or
 *        -ENOENT  libcurl.so.4 could not be loaded (not installed, not
 *                 readable, a dependency missing) or lacks a function of
 *                 the table (a libcurl too old);
 *        -EIO     curl_global_init failed;
 *      and then writes one line to why (when whylen > 0) that names
 *      libcurl.so.4 and, for a load failure, dlerror()'s text. A failure
 *      is final for the process: later calls return the same code and
 *      line without trying again.
 * (L4) Threads: curlload_get may be called from any thread, at once; after
 *      the first call it costs a pthread_once check. The table it gives is
 *      written only inside the once routine, read-only afterwards, and the
 *      same pointer every time. The functions in it follow libcurl's own
 *      rules (an easy handle used by one thread at a time; a share handle
 *      across threads only with lock callbacks, source_dicomweb.c D7).
 * (L5) Calls go through the table with libcurl's prototypes (the variadic
 *      ones included: pass exactly the types libcurl documents for each
 *      option, long for numbers, as the compiler no longer checks them
 *      through curl/typecheck-gcc.h). The prototypes are checked against
 *      <curl/curl.h> at compile time (curl_load.c).
 * Packaging: the run-time library is Debian's libcurl4 (contrib/install-deps
 * installs it with --runtime too): no NEEDED entry says so any more.
 */
#ifndef DICOMFS_CURL_LOAD_H
#define DICOMFS_CURL_LOAD_H

#include <stddef.h>

#include <curl/curl.h>

#define CURLLOAD_SONAME "libcurl.so.4"

/* The libcurl functions dicomfs uses; member x is libcurl's curl_x. */
struct curlload {
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
	CURLcode (*easy_perform)(CURL *h);
	CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *h);
	const char *(*easy_strerror)(CURLcode cc);
	CURLSH *(*share_init)(void);
	CURLSHcode (*share_setopt)(CURLSH *sh, CURLSHoption opt, ...);
	CURLSHcode (*share_cleanup)(CURLSH *sh);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
};

/* L1, L3: load libcurl (first call) and set *out to the table; 0, -ENOENT
 * or -EIO with a line in why. */
int curlload_get(const struct curlload **out, char *why, size_t whylen);

#endif
