/*
 * shared_buf.h - generated file content shared per inode while open.
 *
 * The kinds that generate their content into memory on open (level files,
 * <instance>.json, .png previews, query manifests) build it once per inode
 * and share it between every open of that inode; the last release frees it.
 * The live content of one mount is bounded (-o open_size): the table counts
 * the bytes of every live entry and of every build in progress.
 *
 * Invariants
 * (SB1) At most one build per key at a time; later openers of the same key
 *       wait for it on a condition variable with a deadline (SB_WAIT_MS),
 *       then share its result (or its error). No build runs under the lock.
 * (SB2) Content is immutable while shared: readers use it without a lock.
 * (SB3) An entry lives exactly while it is referenced (refs > 0); the last
 *       shared_buf_put frees it: memory follows the open inodes, not the
 *       number of opens.
 * (SB5) The key names the content: content that differs between callers
 *       (per-caller filtering) must fold the caller's view into the key,
 *       or not be shared.
 * (SB4) bytes (sum of live entries' lengths) <= cap, except that one entry
 *       is always admitted into an empty table (a file larger than the bound
 *       is still servable, one at a time). A build whose result would pass
 *       the bound waits up to SB_WAIT_MS for releases, then fails -ENOMEM
 *       for that file only.
 * (SB6) shared_bufs_retire: the entries live now are shared no more with
 *       later openers (the archive changed, index.h I9): their holders keep
 *       reading them, the next open of their key builds anew.
 * (SB7) shared_bufs_linger (zero-message opens, fs.h Z2): an entry whose
 *       last holder let go stays as an idle entry (refs 0), found again by
 *       its key (the READs of one file), until whichever comes first: its
 *       bytes are needed for another build (the oldest idle first: SB4
 *       counts idle entries too, and a build evicts idle entries before it
 *       waits), the idle entries pass cap / SB_IDLE_SHARE bytes (the oldest
 *       go; the newest always stays), it has been idle SB_IDLE_MS (freed by
 *       the next shared_bufs_sweep: ll.c after every request), or it is
 *       retired (SB6 frees idle ones).
 * Threading: every function is thread-safe (one mutex per table).
 * Errors: 0 or a negative errno; the builder's own error is passed on.
 */
#ifndef DICOMFS_SHARED_BUF_H
#define DICOMFS_SHARED_BUF_H
#include <stddef.h>
#include <stdint.h>

#define SB_WAIT_MS 10000
#define SB_IDLE_MS 2000
#define SB_IDLE_SHARE 4

struct shared_bufs;
struct shared_buf;

/* a table bounded to cap bytes of live content; 0 or -ENOMEM */
int shared_bufs_new(uint64_t cap, struct shared_bufs **out);
/* no entry may be held any more; NULL-safe */
void shared_bufs_free(struct shared_bufs *t);

/* Build the content: a malloc()ed *buf of *len bytes, or a negative error. */
typedef int (*shared_build_fn)(void *ctx, char **buf, size_t *len);

/*
 * The content of key, built by build(ctx) unless shared already (SB1):
 * 0 and *h held (shared_buf_data; shared_buf_put when done), or a negative
 * error: the builder's (also to the openers that waited for it), -EIO when
 * another opener's build of key outlasted SB_WAIT_MS, -ENOMEM (SB4).
 */
int shared_buf_get(struct shared_bufs *t, uint64_t key, shared_build_fn build,
		   void *ctx, struct shared_buf **h);
const char *shared_buf_data(const struct shared_buf *h, size_t *len);
void shared_buf_put(struct shared_buf *h);
/* SB6 */
void shared_bufs_retire(struct shared_bufs *t);
/* SB7: on (1) or off (0; idle entries are freed) */
void shared_bufs_linger(struct shared_bufs *t, int on);
/* SB7: free the entries idle for SB_IDLE_MS; cheap when none is idle
 * (no lock). NULL-safe. */
void shared_bufs_sweep(struct shared_bufs *t);
/* live bytes and entries now (for status and tests) */
void shared_bufs_usage(struct shared_bufs *t, uint64_t *bytes, size_t *entries);

#endif
