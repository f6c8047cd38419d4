/*
 * view_patients.c - patients/<patient>/<study>/<series>/<instance>.*
 *
 * The browsable hierarchy: readable names made from the patient, study and
 * series attributes (naming.h), a suffix derived from the UID on a clash.
 * The directory ids come from the "keys" DB with the level letters 'P',
 * 'S', 'E'; an instance's files share the instance's id (index.h). tree.c
 * builds the hierarchy (tree_patients); this module names the view and the
 * files of its levels (view.h (V4)).
 */
#include "view.h"


/* built by tree.c (view.h: tree_patients, tree_uids) */
const struct view view_patients = { "patients", ID_PATIENTS, tree_patients };
