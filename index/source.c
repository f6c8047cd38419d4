/*
 * source.c - the registry of sources (see source.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"
#include "strbuf.h"

/*
 * One line a source, tried in order: a source that takes only some specs
 * (a URL scheme) goes before source_local, which takes any folder path.
 */
const struct source_ops *const source_registry[] = {
	&source_dicomweb,
	&source_local,
	NULL,
};

int source_create(const char *spec, const struct source_opts *o, struct source *out,
		  char *msg, size_t msglen)
{
	for (const struct source_ops *const *r = source_registry; *r; r++) {
		int rc = (*r)->create(spec, o, &out->inst, msg, msglen);
		if (rc == -ENOTSUP)
			continue;
		out->ops = rc ? NULL : *r;
		return rc;
	}
	snprintf(msg, msglen, "archive '%s': no source takes it", spec);
	return -ENOTSUP;
}

void source_destroy(struct source *s)
{
	if (s->ops)
		s->ops->destroy(s->inst);
	s->ops = NULL;
	s->inst = NULL;
}

void source_list_free(struct source_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].rel);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

int source_walk_under(const struct source *s, const char *rel, size_t rel_len,
		      struct source_list *out, source_problem_fn problem, void *ctx)
{
	if (s->ops->walk_under)
		return s->ops->walk_under(s->inst, rel, rel_len, out, problem, ctx);
	int rc = s->ops->walk(s->inst, out, problem, ctx);
	if (rc || !rel_len)
		return rc;
	size_t w = 0;
	for (size_t i = 0; i < out->n; i++) {
		if (source_under(rel, rel_len, out->v[i].rel, out->v[i].rel_len))
			out->v[w++] = out->v[i];
		else
			free(out->v[i].rel);
	}
	out->n = w;
	return 0;
}

/* "key=value" lines; a value with a newline cannot be passed (refused) */
int source_opts_arg(const struct source_opts *o, struct strbuf *out)
{
	const struct { const char *k, *v; } s[] = {
		{ "cache_dir", o->cache_dir }, { "cafile", o->cafile },
		{ "bearer_token_file", o->bearer_token_file }, { "netrc", o->netrc_file },
	};
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		if (!s[i].v)
			continue;
		if (strchr(s[i].v, '\n'))
			return -EINVAL;
		strbuf_addf(out, "%s=%s\n", s[i].k, s[i].v);
	}
	strbuf_addf(out, "follow_symlinks=%d\ncache_bytes=%llu\ntimeout_s=%d\n",
		    o->follow_symlinks, (unsigned long long)o->cache_bytes, o->timeout_s);
	return strbuf_error(out);
}

int source_opts_parse(char *arg, struct source_opts *o)
{
	for (char *line = arg, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		char *v = strchr(line, '=');
		if (!v)
			return -EINVAL;
		*v++ = 0;
		if (!strcmp(line, "cache_dir"))
			o->cache_dir = v;
		else if (!strcmp(line, "cafile"))
			o->cafile = v;
		else if (!strcmp(line, "bearer_token_file"))
			o->bearer_token_file = v;
		else if (!strcmp(line, "netrc"))
			o->netrc_file = v;
		else if (!strcmp(line, "follow_symlinks"))
			o->follow_symlinks = atoi(v);
		else if (!strcmp(line, "cache_bytes"))
			o->cache_bytes = strtoull(v, NULL, 10);
		else if (!strcmp(line, "timeout_s"))
			o->timeout_s = atoi(v);
		else
			return -EINVAL;
	}
	return 0;
}
