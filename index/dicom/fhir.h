/*
 * fhir.h - FHIR R4 resources of the level files: study.fhir.json
 * (ImagingStudy) and patient.fhir.json (Patient), from an aggregate
 * (levelagg.h); pure: no index, no FUSE.
 *
 * Design notes
 * (F1) Dates: DA "YYYYMMDD" -> "YYYY-MM-DD" when a real calendar date
 *      (leap years checked); anything else is left out.
 * (F2) dateTime = date [+ "T" time + zone]: a FHIR time needs a zone, so
 *      the time (TM "HH[MM[SS[.F{1,6}]]]", colons tolerated) is given only
 *      with a valid TimezoneOffsetFromUTC ("+HHMM"/"-HHMM", |HH| <= 14);
 *      the series' offset, else the study's.
 * (F3) Names: the first PN value; one HumanName per non-empty group
 *      (Alphabetic; Ideographic and Phonetic with the iso21090
 *      EN-representation extension IDE / SYL); text is "prefix given
 *      middle family suffix"; family, given[] (given, middle), prefix[],
 *      suffix[] when present.
 * (F4) A coding whose code is empty is the data-absent-reason extension
 *      ("unknown"), never an empty code.
 * (F5) Ids: 16 lower-case hex digits of FNV-1a 64 over the tree's patient
 *      key (PatientID, else "\0N" + PatientName) for Patient; over that key,
 *      a NUL and the StudyInstanceUID for ImagingStudy (a study filed under
 *      two patients is two resources).
 * (F6) unsignedInt (series / instance number) only from an IS value that
 *      is a whole number 0..2^31-1; otherwise left out.
 * Output: one compact JSON object, keys in a fixed order; the caller adds
 * the final "\n".
 *
 * Errors: 0 or -ENOMEM. Threading: reentrant.
 */
#ifndef DICOMFS_FHIR_H
#define DICOMFS_FHIR_H
#include <stdint.h>
#include "jsonw.h"
#include "levelagg.h"

/* a: levels "P" (or more) */
int fhir_patient(struct jsonw *w, const struct levelagg *a);
/* st: finished (levelagg_study_finish) */
int fhir_imaging_study(struct jsonw *w, const struct levelagg_study *st);

/* The pieces, exposed for the unit test; 1 when valid (out written), 0 not. */
int fhir_date(struct lval da, char out[24]);                        /* F1 */
int fhir_time(struct lval tm, char out[24]);                        /* F2 */
int fhir_tz(struct lval tz, char out[8]);                           /* F2 */
int fhir_datetime(struct lval da, struct lval tm, struct lval tz, char out[64]);
int fhir_uint(struct lval is, unsigned long *out);                  /* F6 */
uint64_t fhir_patient_hash(struct lval pid, struct lval pname);     /* F5 */

#endif
