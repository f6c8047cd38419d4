/*
 * dcmshim_load.c - load the GDCM module on first use (see dcmshim.h).
 *
 * Each shim function here is a trampoline to the module's function of the
 * same name with the dcmshim_gdcm_ prefix, resolved once (pthread_once).
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcmshim.h"
#include "error.h"
#include "log.h"
#include "tags.h"

#ifndef PKGLIBDIR
#define PKGLIBDIR "/usr/local/lib/dicomfs"
#endif
#define MODULE "dicomfs-gdcm.so"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_rc = -ENOENT;
static void (*p_init)(void);
static int (*p_parse_header)(const void *, size_t, int, const uint32_t *, size_t,
			     dcmshim_attr_fn, void *, struct dcmshim_info *);
static int (*p_walk)(const void *, size_t, int, size_t,
		     const struct dcmshim_walk_ops *, void *, struct dcmshim_info *);
static int (*p_decode_pixels)(const void *, size_t, int, dcmshim_alloc_fn, void *,
			      struct dcmshim_pixels *);
static int (*p_decode_frame)(const void *, size_t, const struct dcmshim_frame *,
			     dcmshim_alloc_fn, void *, struct dcmshim_pixels *);
static int (*p_dict_by_keyword)(const char *, uint32_t *, char[3]);
static int (*p_dict_by_tag)(uint32_t, char[3], char *, size_t);
static int (*p_dict_vr)(uint32_t, const char *, size_t, char[2]);
static void (*guard_fn)(void *);
static void *guard_ctx;

void dcmshim_set_guard(void (*fn)(void *ctx), void *ctx)
{
	guard_fn = fn;
	guard_ctx = ctx;
}

static void guard(void)
{
	if (guard_fn)
		guard_fn(guard_ctx);
}

/* The path the module would be loaded from, or -ENOENT (no dlopen: the
 * mount process checks before it starts parser processes). */
int dcmshim_locate(char *out, size_t outlen)
{
	const char *env = getenv("DICOMFS_GDCM");
	char path[PATH_MAX];
	if (env && *env && access(env, R_OK) == 0) {
		snprintf(out, outlen, "%s", env);
		return 0;
	}
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - sizeof(MODULE) - 2);
	if (n > 0) {
		path[n] = 0;
		char *slash = strrchr(path, '/');
		if (slash) {
			strcpy(slash + 1, MODULE);
			if (access(path, R_OK) == 0) {
				snprintf(out, outlen, "%s", path);
				return 0;
			}
		}
	}
	if (access(PKGLIBDIR "/" MODULE, R_OK) == 0) {
		snprintf(out, outlen, "%s", PKGLIBDIR "/" MODULE);
		return 0;
	}
	return -ENOENT;
}

static void *try_open(const char *path, char *why, size_t whylen)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h && !why[0])
		snprintf(why, whylen, "%s", dlerror());
	return h;
}

static void load(void)
{
	char path[PATH_MAX], why[512] = "";
	void *h = NULL;
	const char *env = getenv("DICOMFS_GDCM");

	if (env && *env)
		h = try_open(env, why, sizeof(why));
	if (!h) {
		ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - sizeof(MODULE) - 2);
		if (n > 0) {
			path[n] = 0;
			char *slash = strrchr(path, '/');
			if (slash) {
				strcpy(slash + 1, MODULE);
				h = try_open(path, why, sizeof(why));
			}
		}
	}
	if (!h)
		h = try_open(PKGLIBDIR "/" MODULE, why, sizeof(why));
	if (!h) {
		dfs_log("cannot load the GDCM module %s: %s", MODULE, why);
		return;
	}
	*(void **)&p_init = dlsym(h, "dcmshim_gdcm_init");
	*(void **)&p_parse_header = dlsym(h, "dcmshim_gdcm_parse_header");
	*(void **)&p_walk = dlsym(h, "dcmshim_gdcm_walk");
	*(void **)&p_decode_pixels = dlsym(h, "dcmshim_gdcm_decode_pixels");
	*(void **)&p_decode_frame = dlsym(h, "dcmshim_gdcm_decode_frame");
	*(void **)&p_dict_by_keyword = dlsym(h, "dcmshim_gdcm_dict_by_keyword");
	*(void **)&p_dict_by_tag = dlsym(h, "dcmshim_gdcm_dict_by_tag");
	*(void **)&p_dict_vr = dlsym(h, "dcmshim_gdcm_dict_vr");
	if (!p_init || !p_parse_header || !p_walk || !p_decode_pixels || !p_decode_frame ||
	    !p_dict_by_keyword || !p_dict_by_tag || !p_dict_vr) {
		dfs_log("the GDCM module %s lacks a function: %s", MODULE, dlerror());
		return;
	}
	p_init();
	load_rc = 0;
}

int dcmshim_load(void)
{
	pthread_once(&once, load);
	return load_rc;
}

void dcmshim_init(void)
{
	dcmshim_load();
}

int dcmshim_parse_header(const void *buf, size_t len, int whole,
			 const uint32_t *tags, size_t ntags, dcmshim_attr_fn fn,
			 void *ctx, struct dcmshim_info *info)
{
	if (dcmshim_load()) {
		memset(info, 0, sizeof(*info));
		snprintf(info->error, sizeof(info->error), "GDCM module not available");
		return DFS_EPARSE;
	}
	guard();
	return p_parse_header(buf, len, whole, tags, ntags, fn, ctx, info);
}

int dcmshim_walk(const void *buf, size_t len, int whole, size_t bulk_min,
		 const struct dcmshim_walk_ops *ops, void *ctx,
		 struct dcmshim_info *info)
{
	if (dcmshim_load()) {
		memset(info, 0, sizeof(*info));
		snprintf(info->error, sizeof(info->error), "GDCM module not available");
		return DFS_EPARSE;
	}
	guard();
	return p_walk(buf, len, whole, bulk_min, ops, ctx, info);
}

int dcmshim_decode_pixels(const void *buf, size_t len, int palette,
			  dcmshim_alloc_fn alloc, void *ctx,
			  struct dcmshim_pixels *px)
{
	if (dcmshim_load())
		return DFS_EPARSE;
	guard();
	return p_decode_pixels(buf, len, palette, alloc, ctx, px);
}

int dcmshim_decode_frame(const void *cs, size_t len, const struct dcmshim_frame *f,
			 dcmshim_alloc_fn alloc, void *ctx, struct dcmshim_pixels *px)
{
	if (dcmshim_load()) {
		memset(px, 0, sizeof(*px));
		snprintf(px->error, sizeof(px->error), "GDCM module not available");
		return DFS_EPARSE;
	}
	guard();
	return p_decode_frame(cs, len, f, alloc, ctx, px);
}

int dcmdict_by_keyword(const char *kw, uint32_t *tag, char vr[3])
{
	if (dcmshim_load())
		return -ENOENT;
	return p_dict_by_keyword(kw, tag, vr);
}

int dcmdict_by_tag(uint32_t tag, char vr[3], char *kw, size_t kwlen)
{
	if (dcmshim_load())
		return -ENOENT;
	return p_dict_by_tag(tag, vr, kw, kwlen);
}

int dcmshim_dict_vr(uint32_t tag, const char *creator, size_t creator_len, char vr[2])
{
	if (dcmshim_load()) {
		vr[0] = 'U';
		vr[1] = 'N';
		return DFS_EPARSE;
	}
	return p_dict_vr(tag, creator, creator_len, vr);
}
