/*
 * view_files.c - the names of the derived files each directory level lists
 * (view.h (V4)): data only, so that the tree builder (tree.c) and the views
 * can both use them without a call circle (tests/index_layers.sh).
 */
#include "view.h"

/* <instance>.<ext> in a series directory (V4): index.h index_group_files */
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
const struct level_file view_uid_study_files[] = {
	{ KIND_STUDY_JSON, "study.json" }, { 0, NULL } };
const struct level_file view_uid_series_files[] = {
	{ KIND_SERIES_JSON, "series.json" }, { 0, NULL } };
