/*
 * deid.h - de-identification per DICOM PS3.15 Annex E: the Basic
 * Application Level Confidentiality Profile with the Retain Longitudinal
 * Temporal Information with Modified Dates Option, as pure functions of
 * bytes and a key (no LMDB, no FUSE, no open(): testable and fuzzable).
 *
 * Design notes (invariants; code cites them as (D1) ...)
 * (D1) The table. The actions come from PS3.15 Table E.1-1, kept as data in
 *      deid_table.c with the edition stated (deid_table_version). Private
 *      attributes (odd groups, their creators included) are removed. An
 *      attribute the table does not list is kept; a kept sequence is
 *      cleaned item by item with the same rules (the table's K).
 * (D2) Combined actions. Without the IOD's attribute types, the choice
 *      that keeps any IOD conformant is taken: X/Z -> Z, X/D, Z/D and
 *      X/Z/D -> D, X/Z/U* -> the sequence is kept and its UIDs replaced.
 *      A sequence whose action is D or Z becomes an empty sequence.
 *      The Modified Dates column's C wins over the Basic Profile for DA and
 *      DT values: they are shifted (D4); TM values are kept (a whole-day
 *      shift keeps the time of day).
 * (D3) Pseudonyms. Every value that depends on the key has a length that
 *      does not: a UID (action U) becomes "2.25." and the 39 decimal
 *      digits of the first 128 bits of HMAC-SHA256(key, "uid" 0 UID) with
 *      the top bit set (44 characters); PatientID becomes 16 upper-case hex
 *      digits of HMAC(key, "pid" 0 patient key), and PatientName the same
 *      digits (no fixed word that a real name could contain). So a header's de-identified size is a
 *      function of the original alone, whatever the key.
 * (D4) Dates. Every DA and DT value (and each side of a range, each value
 *      of a multi-valued one) of one patient moves by the same number of
 *      whole days, -365 .. -3651, from HMAC(key, "days" 0 patient key);
 *      a date that does not parse (not YYYYMMDD) becomes empty. The
 *      patient key is the PatientID, or 0 'N' PatientName without one
 *      (as the patients/ view groups: deid_patient_key).
 * (D5) The header. deid_header rewrites the header bytes [0, header_end)
 *      of a Part 10 file (or a bare data set) into a new Part 10 header in
 *      the same transfer syntax: a new meta group (MediaStorageSOPInstance
 *      UID replaced, dicomfs's implementation UID), the data set with the
 *      actions applied, every sequence and item re-encoded with undefined
 *      length, and PatientIdentityRemoved YES, DeidentificationMethod,
 *      DeidentificationMethodCodeSequence (113100, 113107) and
 *      LongitudinalTemporalInformationModified MODIFIED inserted in tag
 *      order. The bytes from header_end on (the Pixel Data element) are the
 *      original's, so the pixels are equal.
 * (D6) Bounds. Every length is checked against the input before use;
 *      nesting deeper than DEID_MAX_DEPTH, or a structure that does not
 *      walk, is an error (DFS_EPARSE / DFS_ETOOBIG), never a read out of
 *      bounds (fuzz_deid).
 *
 * Errors: 0 or negative errno / DFS_* (error.h).
 * Threading: no global state; every function is thread-safe.
 */
#ifndef DICOMFS_DEID_H
#define DICOMFS_DEID_H
#include <stdint.h>
#include <stddef.h>
#include "strbuf.h"

#define DEID_KEY_LEN 32
#define DEID_UID_LEN 44     /* "2.25." + 39 digits (D3) */
#define DEID_PID_LEN 16
#define DEID_MAX_DEPTH 32

struct deid_key {
	uint8_t k[DEID_KEY_LEN];
};

/* One row of Table E.1-1 (deid_table.c) */
struct deid_rule {
	uint32_t tag, mask;    /* matches when (t & mask) == tag */
	char vr[3];
	const char *basic;     /* "X", "Z/D", "X/Z/U" (the table's U*) ... */
	const char *moddates;  /* the Modified Dates Option column, or "" */
	const char *name;
};
extern const struct deid_rule deid_table[];
extern const size_t deid_ntable;
extern const char deid_table_version[];

/* The resolved action for one attribute (D1, D2). */
enum deid_action {
	DEID_KEEP = 0,   /* kept (a sequence: cleaned) */
	DEID_REMOVE,     /* X, and private attributes */
	DEID_EMPTY,      /* Z */
	DEID_DUMMY,      /* D */
	DEID_UID,        /* U */
	DEID_SHIFT,      /* C of the Modified Dates Option (D4) */
	DEID_PID,        /* PatientID: the pseudonym (D3) */
	DEID_PNAME,      /* PatientName: the pseudonym (D3) */
	DEID_OURS,       /* written by deid_header itself (D5): dropped */
};
/* the rule of tag, or NULL when the table does not list it */
const struct deid_rule *deid_rule_of(uint32_t tag);
/* the action for tag with VR vr (the file's, or NULL: the table's) */
enum deid_action deid_action_of(uint32_t tag, const char *vr);

/* The pseudonyms and the date shift of one patient (D3, D4). */
struct deid_patient {
	char pid[DEID_PID_LEN + 1];
	char pname[DEID_PID_LEN + 1];
	int days;
};

/* The patient key of an instance (D4) into out: PatientID, or 0 'N' and
 * the PatientName. Returns its length. */
size_t deid_patient_key(const char *pid, size_t pidl, const char *pn, size_t pnl,
			struct strbuf *out);
void deid_patient(const struct deid_key *k, const char *pkey, size_t len,
		  struct deid_patient *p);
/* the pseudonym of a UID (trailing NULs and spaces ignored) into out */
void deid_uid(const struct deid_key *k, const char *uid, size_t len,
	      char out[DEID_UID_LEN + 1]);
/* a key's public fingerprint (hex, 16 digits): tells keys apart, gives
 * nothing away (HMAC(key, "key id")) */
void deid_key_id(const struct deid_key *k, char out[17]);

/*
 * One text value (UTF-8 or the file's bytes) of tag with VR vr:
 * 0 kept (out untouched), 1 replaced (out holds the new value), 2 removed.
 * Multi-valued DA/DT values are shifted value by value. -ENOMEM.
 */
int deid_text(const struct deid_key *k, const struct deid_patient *p, uint32_t tag,
	      const char *vr, const char *v, size_t l, struct strbuf *out);

/*
 * A record (record.h) of an instance with every attribute de-identified
 * (deid_text), into out (rec_begin'ed here; rec_release it); the patient
 * key from the record itself. 0 or -ENOMEM / -EINVAL.
 */
struct rec_buf;
int deid_record(const struct deid_key *k, const void *rec, size_t len,
		struct rec_buf *out);

/*
 * The de-identified header (D5) of a file whose first header_end bytes
 * (the header, up to the top-level Pixel Data element or the end of the
 * data set) are buf, for patient p, appended to out. The caller serves the
 * file's bytes from header_end on after it. 0, DFS_EPARSE (not walkable,
 * deflated), DFS_ETOOBIG (D6) or -ENOMEM.
 */
int deid_header(const struct deid_key *k, const struct deid_patient *p,
		const uint8_t *buf, size_t header_end, struct strbuf *out);

#endif
