/*
 * view_uids.c - uids/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.*
 *
 * A second view of the same instances whose names are the UIDs, so a name
 * never changes when other files arrive. The instance files are the very
 * inodes of patients/ (same id and kind: hard links, nlink 2); the study
 * and series directories get ids from "keys" with the level letters 'u' /
 * 'v' (a study filed under two patients is one directory here). tree.c
 * builds the hierarchy (tree_uids); this module names the view and the
 * files of its levels (view.h (V4)): study.json and series.json only.
 */
#include "view.h"


/* built by tree.c (view.h: tree_patients, tree_uids) */
const struct view view_uids = { "uids", ID_UIDS, tree_uids };
