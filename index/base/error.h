/*
 * error.h - the one error convention of dicomfs.
 *
 * Every function returns 0 (or a positive count/flag where documented) on
 * success and a negative number on failure: either -errno, or a code from
 * the project range below (-1000 .. -1099). Conversion to a FUSE reply or an
 * exit status happens only at the edge (fs/).
 */
#ifndef DICOMFS_ERROR_H
#define DICOMFS_ERROR_H

enum {
	DFS_ERR_BASE    = -1000,
	DFS_ENOTDICOM   = -1001, /* no DICOM preamble/meta and no plausible dataset */
	DFS_ETRUNC      = -1002, /* file ends inside the header */
	DFS_ENOUID      = -1003, /* Study/Series/SOP Instance UID missing */
	DFS_EPARSE      = -1004, /* GDCM could not parse the header */
	DFS_ENEEDMORE   = -1005, /* internal: prefix too short, widen and retry */
	DFS_EINDEX      = -1006, /* index corrupt or of a foreign format */
	DFS_ETOOBIG     = -1007, /* a length field exceeds sane limits */
	DFS_EDUP        = -1008, /* duplicate SOP Instance UID */
	DFS_ECRASH      = -1009, /* the parser process died on this file */
	DFS_ETIMEOUT    = -1010, /* the parser took too long on this file */
	DFS_EBUDGET     = -1011, /* a worker ran past its CPU budget (worker.h W10) */
	DFS_ERR_LAST    = -1099,
};

/* Text for any code of the convention (negative errno or project code). */
const char *dfs_strerror(int err);

/* Map a project code to the errno a FUSE reply should carry. */
int dfs_errno(int err);

#endif
