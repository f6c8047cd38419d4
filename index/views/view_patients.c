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

const struct level_file view_patient_files[] = {
	{ KIND_PATIENT_JSON, "patient.json" }, { KIND_PATIENT_FHIR, "patient.fhir.json" },
	{ 0, NULL } };
const struct level_file view_study_files[] = {
	{ KIND_STUDY_JSON, "study.json" }, { KIND_STUDY_FHIR, "study.fhir.json" },
	{ 0, NULL } };
/* volume.nii/.npy are listed only for series that form a volume (volreport.h) */
const struct level_file view_series_files[] = {
	{ KIND_SERIES_JSON, "series.json" }, { KIND_VOLUME_NII, "volume.nii" },
	{ KIND_VOLUME_NPY, "volume.npy" }, { 0, NULL } };

/* built by tree.c (view.h: tree_patients, tree_uids) */
const struct view view_patients = { "patients", ID_PATIENTS, tree_patients };
