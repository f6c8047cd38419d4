/*
 * view_sources.c - sources/<relative path>: every file of the archive
 * under its own relative path, with its original bytes.
 *
 * What patients/ cannot show is here too: the duplicates of a SOP
 * Instance UID that patients/ hides (tree.c: dedup_sop), files that are
 * not DICOM and files that could not be indexed (errors.tsv says why). A
 * backup of sources/ is a backup of the archive as indexed. Only what the
 * walk indexes is listed: regular files (source.h R1); FIFOs, devices and
 * sockets never are, and open() refuses what was swapped in since (R3).
 *
 * A file is inode (its record's id, KIND_SOURCE) (index.h I1, I2): for an
 * instance shown in patients/ the instance's own node (same size, owner,
 * mode and times as its .dcm, nlink 1 here), for any other file a node of
 * its own (NODE_INSTANCE with its relative path, nlink 1). The folders get
 * ids from "keys" ('R' + the folder's path), node type NODE_PATIENT (for
 * the access model, fs/access.h A1/A2: a folder is seen by who can read a
 * file below it; its files by who can read them). tree.c builds it
 * (tree_sources).
 */
#include "view.h"

const struct view view_sources = { "sources", ID_SOURCES, tree_sources };
