#include <errno.h>
#include <string.h>
#include "error.h"

const char *dfs_strerror(int err)
{
	switch (err) {
	case DFS_ENOTDICOM: return "not a DICOM file";
	case DFS_ETRUNC:    return "truncated inside the DICOM header";
	case DFS_ENOUID:    return "missing Study, Series or SOP Instance UID";
	case DFS_EPARSE:    return "DICOM header could not be parsed";
	case DFS_ENEEDMORE: return "header longer than the prefix read";
	case DFS_EINDEX:    return "index is corrupt or of a foreign format";
	case DFS_ETOOBIG:   return "length field out of range";
	case DFS_EDUP:      return "duplicate SOP Instance UID";
	case DFS_ECRASH:    return "the DICOM parser crashed on this file (contained)";
	case DFS_ETIMEOUT:  return "the DICOM parser took too long on this file (killed)";
	case DFS_EBUDGET:   return "a worker process ran past its CPU time budget (killed)";
	}
	if (err < 0 && err > DFS_ERR_BASE)
		return strerror(-err);
	return "unknown error";
}

int dfs_errno(int err)
{
	if (err < 0 && err > DFS_ERR_BASE)
		return -err;
	return EIO;
}
