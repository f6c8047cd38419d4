/* unit.h - a minimal test harness: CHECK() counts, unit_done() reports. */
#ifndef DICOMFS_UNIT_H
#define DICOMFS_UNIT_H
#include <stdio.h>
#include <string.h>

static int unit_pass, unit_fail;

#define CHECK(cond, ...) do { \
	if (cond) { unit_pass++; } else { unit_fail++; \
		printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); \
		printf("\n"); } } while (0)

#define CHECK_STR(got, want) do { const char *g_ = (got), *w_ = (want); \
	CHECK(strcmp(g_, w_) == 0, "got '%s', want '%s'", g_, w_); } while (0)

static inline int unit_done(void)
{
	printf("%d passed, %d failed\n", unit_pass, unit_fail);
	return unit_fail ? 1 : 0;
}
#endif
