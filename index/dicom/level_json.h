/*
 * level_json.h - series.json, study.json and patient.json: one QIDO-RS
 * style result (DICOM JSON Model, PS3.18 F) per level, from an aggregate
 * (levelagg.h); pure: no index, no FUSE.
 *
 * Output (each one JSON object, compact, keys in the fixed order below;
 * the caller adds the final "\n"):
 *   series.json   SeriesDate SeriesTime Modality SeriesDescription
 *                 BodyPartExamined StudyInstanceUID SeriesInstanceUID
 *                 SeriesNumber NumberOfSeriesRelatedInstances
 *   study.json    StudyDate StudyTime AccessionNumber ModalitiesInStudy
 *                 ReferringPhysicianName StudyDescription PatientName
 *                 PatientID PatientBirthDate PatientSex StudyInstanceUID
 *                 StudyID NumberOfStudyRelatedSeries / ...Instances
 *   patient.json  PatientName PatientID PatientBirthDate PatientSex
 *                 NumberOfPatientRelatedStudies / ...Series / ...Instances
 * Conventions (as the instance JSON, dcmjson.h, where they meet):
 * (L1) every attribute is present with its "vr"; an empty value has no
 *      "Value";
 * (L2) values split at '\' except LT/ST/UT/UR; an empty component is null;
 *      PN components as {"Alphabetic","Ideographic","Phonetic"} with empty
 *      groups left out (null when all are); IS/DS as jsonw_decimal();
 * (L3) the level values are the aggregate's (first non-empty value below,
 *      levelagg.h A1); ModalitiesInStudy is the sorted distinct set (A4).
 *
 * Errors: 0 or -ENOMEM (also left in the writer's strbuf). Threading:
 * reentrant.
 */
#ifndef DICOMFS_LEVEL_JSON_H
#define DICOMFS_LEVEL_JSON_H
#include <stdint.h>
#include "jsonw.h"
#include "levelagg.h"

/* a: levels "ES" (or more); ninst: the series' instances */
int level_json_series(struct jsonw *w, const struct levelagg *a, uint64_t ninst);
/* st: finished (levelagg_study_finish) */
int level_json_study(struct jsonw *w, const struct levelagg_study *st);
/* a: levels "P" (or more); the counts of what is below the patient */
int level_json_patient(struct jsonw *w, const struct levelagg *a, uint64_t nstudies,
		       uint64_t nseries, uint64_t ninst);

/* One attribute "GGGGEEEE":{"vr":vr[,"Value":[...]]} per (L1, L2). */
void level_json_attr(struct jsonw *w, uint32_t tag, const char *vr, struct lval v);

#endif
