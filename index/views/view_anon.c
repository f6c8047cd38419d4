/*
 * view_anon.c - anon/<patient>/<study>/<series>/<instance>.*: the archive
 * de-identified per DICOM PS3.15 Annex E (index/dicom/deid.h), computed on
 * the fly, costing no disk.
 *
 * The shape is the patients/ view's; every name comes from de-identified
 * values (pseudonymous PatientID and PatientName, shifted dates, UID
 * pseudonyms; descriptions and accession numbers are removed by the
 * profile, so they are not in names either). tree.c builds the hierarchy
 * (tree_anon) with directory ids from "keys" letters 'A' 'B' 'C' and
 * instance ids from 'a' + SOP Instance UID, every node flagged NODE_F_ANON,
 * so fs/ serves de-identified content for them (fs/kind_anon.c) and
 * query/ and uids/, whose links and inodes are patients/'s, never lead
 * here. Instances left out (burned-in annotation, deflated data sets) are
 * listed in errors.tsv (meta "anon_excluded").
 *
 * The key: -o anon_key=FILE (any secret of 16 bytes or more: the key is
 * its SHA-256), or "anon.key" beside the index, 32 random bytes made once
 * with mode 0600. The tree depends on the key (names are pseudonyms): the
 * index keeps the key's id (deid_key_id, which gives the key away no more
 * than a hash does) and rebuilds the tree when another key is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nettle/sha2.h>

#include "store.h"
#include "view.h"

const struct view view_anon = { "anon", ID_ANON, tree_anon };

#define KEY_MIN 16
#define KEY_MAX 4096

/* read a whole small file; its byte count, or a negative errno */
static ssize_t read_small(const char *path, uint8_t *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	size_t n = 0;
	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	return n == cap ? -EFBIG : (ssize_t)n;
}

/* "anon.key" in the index directory: made once (O_EXCL, 0600) */
static int default_key(const char *dir, char *path, size_t plen, char *msg, size_t msglen)
{
	uint8_t k[DEID_KEY_LEN];
	snprintf(path, plen, "%s/anon.key", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno;
	if (getrandom(k, sizeof(k), 0) != (ssize_t)sizeof(k) ||
	    write(fd, k, sizeof(k)) != (ssize_t)sizeof(k) || fsync(fd)) {
		int e = errno ? -errno : -EIO;
		close(fd);
		unlink(path);
		snprintf(msg, msglen, "anon key '%s': cannot make it: %s", path, strerror(-e));
		return e;
	}
	close(fd);
	return 0;
}

int view_anon_key(struct index *ix, char *msg, size_t msglen)
{
	char path[4096];
	uint8_t buf[KEY_MAX];
	struct stat st;
	int rc = 0;
	if (ix->opts.anon_key_file)
		snprintf(path, sizeof(path), "%s", ix->opts.anon_key_file);
	else if ((rc = default_key(ix->path, path, sizeof(path), msg, msglen)))
		return msg[0] ? rc : (snprintf(msg, msglen, "anon key in '%s': %s", ix->path,
					       strerror(-rc)), rc);
	ssize_t n = read_small(path, buf, sizeof(buf));
	if (n < 0) {
		snprintf(msg, msglen, "anon key '%s': %s", path,
			 n == -EFBIG ? "larger than 4 KiB" : strerror((int)-n));
		return (int)n;
	}
	if (n < KEY_MIN) {
		snprintf(msg, msglen, "anon key '%s': shorter than %d bytes", path, KEY_MIN);
		return -EINVAL;
	}
	if (!ix->opts.anon_key_file && stat(path, &st) == 0 && (st.st_mode & 077))
		chmod(path, 0600);
	struct sha256_ctx c;
	sha256_init(&c);
	sha256_update(&c, (size_t)n, buf);
	sha256_digest(&c, DEID_KEY_LEN, ix->anon_key.k);
	memset(buf, 0, sizeof(buf));
	return 0;
}

const struct deid_key *index_anon_key(const struct index *ix)
{
	return &ix->anon_key;
}
