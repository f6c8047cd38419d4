/*
 * tags.h - the attributes dicomfs indexes, with their keywords and levels.
 *
 * The table is sorted by tag (dcmshim_parse_header wants ascending tags).
 * Level: 'P' patient, 'S' study, 'E' series, 'I' instance (image/pixel
 * description attributes are instance level).
 */
#ifndef DICOMFS_TAGS_H
#define DICOMFS_TAGS_H
#include <stdint.h>
#include <stddef.h>

#define TAG_SPECIFIC_CHARSET     0x00080005u
#define TAG_SOP_CLASS_UID        0x00080016u
#define TAG_BURNED_IN            0x00280301u   /* BurnedInAnnotation */
#define TAG_SOP_INSTANCE_UID     0x00080018u
#define TAG_STUDY_DATE           0x00080020u
#define TAG_STUDY_TIME           0x00080030u
#define TAG_ACCESSION_NUMBER     0x00080050u
#define TAG_MODALITY             0x00080060u
#define TAG_STUDY_DESCRIPTION    0x00081030u
#define TAG_SERIES_DESCRIPTION   0x0008103Eu
#define TAG_PATIENT_NAME         0x00100010u
#define TAG_PATIENT_ID           0x00100020u
#define TAG_STUDY_INSTANCE_UID   0x0020000Du
#define TAG_SERIES_INSTANCE_UID  0x0020000Eu
#define TAG_SERIES_NUMBER        0x00200011u
#define TAG_INSTANCE_NUMBER      0x00200013u
#define TAG_NUMBER_OF_FRAMES     0x00280008u
#define TAG_IMAGE_TYPE           0x00080008u

struct dfs_tag {
	uint32_t tag;
	const char *keyword;
	char level;
};

extern const struct dfs_tag dfs_tags[];
extern const size_t dfs_ntags;

/* The tag numbers of dfs_tags[], ascending (for dcmshim_parse_header). */
extern const uint32_t *dfs_tag_numbers(void);

const struct dfs_tag *tags_by_tag(uint32_t tag);
const struct dfs_tag *tags_by_keyword(const char *keyword);

/*
 * tags_parse: a keyword (this table first, then GDCM's public dictionary)
 * or a tag as GGGGEEEE or (GGGG,EEEE) -> tag number and dictionary VR
 * ("UN" when unknown: private tags). 0 or -ENOENT.
 */
int tags_parse(const char *s, uint32_t *tag, char vr[3]);
/* "Keyword,GGGGEEEE,..." -> malloc()ed tags (unsorted); -EINVAL with msg */
int tags_parse_list(const char *list, uint32_t **out, size_t *n, char *msg,
		    size_t msglen);
/* sort ascending and drop duplicates; returns the new count */
size_t tags_sort_unique(uint32_t *v, size_t n);

/* GDCM's dictionary (index/dicom/gdcm/dcmdict.cc). 0 or -ENOENT. */
int dcmdict_by_keyword(const char *kw, uint32_t *tag, char vr[3]);
int dcmdict_by_tag(uint32_t tag, char vr[3], char *kw, size_t kwlen);

/* DA arithmetic: days since 1970-01-01 of a proleptic Gregorian date, and
 * back (Howard Hinnant's civil-date algorithms) */
static inline long tags_days_from_civil(long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long)doe - 719468;
}

static inline void tags_civil_from_days(long z, long *y, unsigned *m, unsigned *d)
{
	z += 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (long)yoe + era * 400 + (*m <= 2);
}

#endif
