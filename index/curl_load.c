/*
 * curl_load.c - load libcurl on first use (see curl_load.h).
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "curl_load.h"

/* every member of struct curlload; X(m) for libcurl's curl_m */
#define CURLLOAD_FUNCS(X) \
	X(easy_init) X(easy_setopt) X(easy_perform) X(easy_getinfo) \
	X(easy_cleanup) X(easy_strerror) X(share_init) X(share_setopt) \
	X(share_cleanup) X(slist_append) X(slist_free_all)

/* L5: the table's prototypes are <curl/curl.h>'s (no call, no reference:
 * nothing here makes the program need libcurl at link time) */
#define CURLLOAD_CHECK(m) \
	_Static_assert(__builtin_types_compatible_p(__typeof__(&curl_##m), \
						    __typeof__(((struct curlload *)0)->m)), \
		       "struct curlload: " #m " is not curl_" #m " of <curl/curl.h>");
CURLLOAD_FUNCS(CURLLOAD_CHECK)

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct curlload table;       /* L4: written in load() only */
static int load_rc;
static char load_why[512];

static void load(void)
{
	const char *e;
	void *h = dlopen(CURLLOAD_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		e = dlerror();
		snprintf(load_why, sizeof(load_why), "cannot load %s (libcurl, which a DICOMweb "
			 "archive needs; Debian package libcurl4): %s", CURLLOAD_SONAME,
			 e ? e : "unknown error");
		load_rc = -ENOENT;
		return;
	}
#define CURLLOAD_SYM(m) \
	dlerror(); \
	*(void **)&table.m = dlsym(h, "curl_" #m); \
	if (!table.m) { \
		e = dlerror(); \
		snprintf(load_why, sizeof(load_why), "%s has no function curl_" #m \
			 " (a libcurl too old?): %s", CURLLOAD_SONAME, e ? e : "not found"); \
		goto fail; \
	}
	CURLLOAD_FUNCS(CURLLOAD_SYM)
#undef CURLLOAD_SYM
	{
		/* L1: found by dlsym too (not in the table: called here only) */
		__typeof__(&curl_global_init) global_init;
		dlerror();
		*(void **)&global_init = dlsym(h, "curl_global_init");
		if (!global_init) {
			e = dlerror();
			snprintf(load_why, sizeof(load_why), "%s has no function curl_global_init: %s",
				 CURLLOAD_SONAME, e ? e : "not found");
			goto fail;
		}
		CURLcode cc = global_init(CURL_GLOBAL_DEFAULT);
		if (cc != CURLE_OK) {
			snprintf(load_why, sizeof(load_why), "%s: curl_global_init failed: %s",
				 CURLLOAD_SONAME, table.easy_strerror(cc));
			load_rc = -EIO;
			return;   /* loaded, not usable: kept (L1: never unloaded) */
		}
	}
	return;
fail:
	table = (struct curlload){ 0 };
	dlclose(h);
	load_rc = -ENOENT;
}

int curlload_get(const struct curlload **out, char *why, size_t whylen)
{
	pthread_once(&once, load);
	if (load_rc) {
		*out = NULL;
		if (whylen)
			snprintf(why, whylen, "%s", load_why);
		return load_rc;
	}
	*out = &table;
	return 0;
}
