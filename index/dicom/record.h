/*
 * record.h - the value stored per source file in the index ("files" DB).
 *
 * On-disk layout (host byte order; the index is a per-machine cache and its
 * format version covers the layout):
 *   struct rec_head
 *   nattrs x { uint32 tag; char vr[2]; uint16 len; len bytes }
 * Attribute values are trimmed UTF-8 (text already decoded per
 * SpecificCharacterSet), never NUL-terminated on disk.
 *
 * rec_attr() validates every length against the record size, so a corrupt
 * record yields "absent", never a read out of bounds.
 */
#ifndef DICOMFS_RECORD_H
#define DICOMFS_RECORD_H
#include <stdint.h>
#include <stddef.h>

enum rec_status {
	REC_OK = 0,      /* placed in the tree (unless a duplicate) */
	REC_SKIPPED = 1, /* not DICOM: left out, listed */
	REC_ERROR = 2,   /* DICOM but unusable (truncated, unparsable, no UID) */
};

enum rec_flags {
	RECF_ENCAPSULATED = 1 << 0,
	RECF_PIXEL_TRUNC  = 1 << 1,
	RECF_DEFLATED     = 1 << 2,
	RECF_BIG_ENDIAN   = 1 << 3,
	RECF_EXPLICIT_VR  = 1 << 4,
	RECF_HAS_META     = 1 << 5,
	RECF_PARTIAL      = 1 << 6, /* GDCM read the header only partly */
	RECF_CHARSET_WARN = 1 << 7,
};

struct rec_head {
	uint32_t version;
	int32_t err;          /* 0 or a DFS_* / -errno code */
	uint8_t status;       /* enum rec_status */
	uint8_t flags;        /* enum rec_flags */
	uint16_t nattrs;
	uint32_t mode, uid, gid;
	uint64_t id;          /* instance id: stable while the path exists */
	uint64_t size;
	int64_t mtime_ns;
	uint64_t ino;         /* source st_ino, part of the "unchanged" test */
	uint64_t pixel_offset, pixel_length;
	uint32_t pixel_tag;
	uint32_t header_end;
	uint64_t json_size;   /* bytes of the instance's DICOM JSON without
			       * the instance name; 0: none (dcmjson.h) */
	uint64_t json_bulk;   /* BulkDataURIs in it: each adds the name once */
	uint64_t reserved[2];
};

#define REC_VERSION 3

struct rec_buf {
	unsigned char *data;
	size_t len, cap;
};

int rec_begin(struct rec_buf *b, const struct rec_head *h);
int rec_add(struct rec_buf *b, uint32_t tag, const char vr[2],
	    const char *val, size_t len);
void rec_release(struct rec_buf *b);

/* Validate a stored record; returns the head (copied, aligned) or -EINVAL. */
int rec_head_get(const void *val, size_t len, struct rec_head *h);

/* Find tag; returns 1 and sets *v and *l, or 0 when absent (or record corrupt). */
int rec_attr(const void *val, size_t len, uint32_t tag, const char **v,
	     size_t *l);
/* rec_attr for n tags in one pass over the record: v[i], l[i] as rec_attr
 * would set them for tags[i] (its first attribute), v[i] NULL when absent.
 * Returns how many were found. */
size_t rec_attrs(const void *val, size_t len, const uint32_t *tags, size_t n,
		 const char **v, size_t *l);

/*
 * A value longer than an attribute can hold (65535 bytes): rec_add_blob
 * stores it as consecutive attributes with the same tag (chunks of at most
 * 65535 bytes; an empty value is one empty attribute); rec_blob gives them
 * back joined, malloc()ed in *out (free it). rec_blob: 1 found, 0 absent
 * (or the record is corrupt), -ENOMEM.
 */
int rec_add_blob(struct rec_buf *b, uint32_t tag, const char vr[2],
		 const void *val, size_t len);
int rec_blob(const void *val, size_t len, uint32_t tag, void **out,
	     size_t *outlen);

/* Iterate: *pos starts at 0; returns 1 per attribute, 0 at the end. */
int rec_next(const void *val, size_t len, size_t *pos, uint32_t *tag,
	     char vr[2], const char **v, size_t *l);

#endif
