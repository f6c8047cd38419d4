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
 * The key (store.c, anon_key_load): -o anon_key=FILE (any secret of 16
 * bytes or more: the key is its SHA-256), or "anon.key" beside the index,
 * 32 random bytes made once with mode 0600. The tree depends on the key
 * (names are pseudonyms): the index keeps the key's id (deid_key_id, which
 * gives the key away no more than a hash does) and rebuilds the tree when
 * another key is used (scan.c).
 */

#include "view.h"

const struct view view_anon = { "anon", ID_ANON, tree_anon };
