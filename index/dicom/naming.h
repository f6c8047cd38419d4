/*
 * naming.h - readable, safe, deterministic names for the tree.
 *
 * All inputs are UTF-8 (already decoded from the file's character set) and
 * may carry DICOM padding; all outputs are NUL-terminated UTF-8 of at most
 * NAME_MAX_BYTES bytes (without the terminator) that never contain '/',
 * '\\', NUL, control characters nor the glob / fnmatch specials '*', '?',
 * '[' and ']' (N1), never start with '.' or '~', and are never empty.
 * Pure functions: thread-safe.
 *
 * Rules (the README repeats them for users):
 *   patient  "<Family Given ...> (<PatientID>)", either part alone when
 *            the other is empty, "Unknown patient" when both are;
 *   study    "<YYYY-MM-DD> <StudyDescription> (<AccessionNumber>)",
 *            empty parts left out, "Study <StudyInstanceUID>" when all are;
 *            the date from YYYYMMDD or the ACR-NEMA YYYY.MM.DD, else as is;
 *   series   "<SeriesNumber padded> <Modality> <SeriesDescription>",
 *            "Series <SeriesInstanceUID>" when all are empty;
 *   instance "<InstanceNumber padded>", "<SOPInstanceUID>" when absent.
 *   Siblings whose names collide all get " ~<8 hex of FNV-1a(UID)>".
 *
 * (N1) Names are glob-safe: every name the tree, uids/, anon/ and query/
 *      links show is built here, and every character of a DICOM value
 *      passes name_sanitize, which writes '_' for '*', '?', '[' and ']'
 *      (as for '/' and '\\'); the separators added here are ' ', '(', ')',
 *      '-' and " ~": glob.glob / fnmatch patterns made of a mount path
 *      match it literally. A leading '~' (shell tilde expansion) becomes
 *      '_' as a leading '.' does. (dicomfs-index 10: the accession number
 *      was "[...]" before.)
 */
#ifndef DICOMFS_NAMING_H
#define DICOMFS_NAMING_H
#include <stddef.h>
#include <stdint.h>

#define NAME_MAX_BYTES 255
#define NAME_BUF (NAME_MAX_BYTES + 1)
/* room kept for " ~xxxxxxxx" and the longest file extension */
#define NAME_BASE_MAX (NAME_MAX_BYTES - 10 - 16)

/* Sanitize in[0,len) into out (size outsz >= 4); returns the length. */
size_t name_sanitize(const char *in, size_t len, char *out, size_t outsz);

/* PN value -> "Family Given Middle Prefix Suffix" (alphabetic group). */
size_t name_pn_display(const char *pn, size_t len, char *out, size_t outsz);

uint64_t name_fnv1a(const char *s, size_t len);

/* Is c one of the glob specials name_sanitize replaces (N1)? */
int name_glob_char(char c);

/* A DA value as YYYYMMDD or the ACR-NEMA YYYY.MM.DD (trailing spaces and
 * NULs ignored; the digits are not checked as a calendar date): 1 and its
 * eight digits in ymd, else 0. */
int name_da_digits(const char *s, size_t len, char ymd[8]);

/* Integer parse of an IS value; returns 1 and *v when it is one. */
int name_parse_int(const char *s, size_t len, long long *v);

/* Number of decimal digits of v (v >= 0). */
int name_digits(long long v);

void name_patient(const char *pn, size_t pnl, const char *id, size_t idl,
		  char out[NAME_BUF]);
void name_study(const char *date, size_t datel, const char *desc, size_t descl,
		const char *acc, size_t accl, const char *uid, size_t uidl,
		char out[NAME_BUF]);
void name_series(const char *num, size_t numl, int width, const char *mod,
		 size_t modl, const char *desc, size_t descl, const char *uid,
		 size_t uidl, char out[NAME_BUF]);
void name_instance(const char *num, size_t numl, int width, const char *uid,
		   size_t uidl, char out[NAME_BUF]);

/* Append " ~xxxxxxxx" (from uid) to name, keeping it within limits. */
void name_add_suffix(char name[NAME_BUF], const char *uid, size_t uidl);

#endif
