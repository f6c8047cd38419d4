#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include "tags.h"

const struct dfs_tag dfs_tags[] = {
	{ 0x00080005, "SpecificCharacterSet", 'I' },
	{ 0x00080008, "ImageType", 'I' },
	{ 0x00080016, "SOPClassUID", 'I' },
	{ 0x00080018, "SOPInstanceUID", 'I' },
	{ 0x00080020, "StudyDate", 'S' },
	{ 0x00080021, "SeriesDate", 'E' },
	{ 0x00080030, "StudyTime", 'S' },
	{ 0x00080031, "SeriesTime", 'E' },
	{ 0x00080032, "AcquisitionTime", 'I' },
	{ 0x00080050, "AccessionNumber", 'S' },
	{ 0x00080060, "Modality", 'E' },
	{ 0x00080070, "Manufacturer", 'E' },
	{ 0x00080090, "ReferringPhysicianName", 'S' },
	{ 0x00080201, "TimezoneOffsetFromUTC", 'S' },
	{ 0x00081030, "StudyDescription", 'S' },
	{ 0x0008103E, "SeriesDescription", 'E' },
	{ 0x00100010, "PatientName", 'P' },
	{ 0x00100020, "PatientID", 'P' },
	{ 0x00100030, "PatientBirthDate", 'P' },
	{ 0x00100040, "PatientSex", 'P' },
	{ 0x00180015, "BodyPartExamined", 'E' },
	{ 0x00180050, "SliceThickness", 'I' },
	{ 0x00180086, "EchoNumbers", 'I' },
	{ 0x0020000D, "StudyInstanceUID", 'S' },
	{ 0x0020000E, "SeriesInstanceUID", 'E' },
	{ 0x00200010, "StudyID", 'S' },
	{ 0x00200011, "SeriesNumber", 'E' },
	{ 0x00200013, "InstanceNumber", 'I' },
	{ 0x00200032, "ImagePositionPatient", 'I' },
	{ 0x00200037, "ImageOrientationPatient", 'I' },
	{ 0x00200100, "TemporalPositionIdentifier", 'I' },
	{ 0x00280002, "SamplesPerPixel", 'I' },
	{ 0x00280004, "PhotometricInterpretation", 'I' },
	{ 0x00280006, "PlanarConfiguration", 'I' },
	{ 0x00280008, "NumberOfFrames", 'I' },
	{ 0x00280010, "Rows", 'I' },
	{ 0x00280011, "Columns", 'I' },
	{ 0x00280030, "PixelSpacing", 'I' },
	{ 0x00280100, "BitsAllocated", 'I' },
	{ 0x00280101, "BitsStored", 'I' },
	{ 0x00280102, "HighBit", 'I' },
	{ 0x00280103, "PixelRepresentation", 'I' },
	{ 0x00280301, "BurnedInAnnotation", 'I' },
	{ 0x00281050, "WindowCenter", 'I' },
	{ 0x00281051, "WindowWidth", 'I' },
	{ 0x00281052, "RescaleIntercept", 'I' },
	{ 0x00281053, "RescaleSlope", 'I' },
	/* QIDO-RS series matching keys (PS3.18 Table 10.6.1-5) */
	{ 0x00400244, "PerformedProcedureStepStartDate", 'E' },
	{ 0x00400245, "PerformedProcedureStepStartTime", 'E' },
};
const size_t dfs_ntags = sizeof(dfs_tags) / sizeof(dfs_tags[0]);

static uint32_t numbers[sizeof(dfs_tags) / sizeof(dfs_tags[0])];
static pthread_once_t numbers_once = PTHREAD_ONCE_INIT;

static void numbers_fill(void)
{
	for (size_t i = 0; i < dfs_ntags; i++)
		numbers[i] = dfs_tags[i].tag;
}

const uint32_t *dfs_tag_numbers(void)
{
	pthread_once(&numbers_once, numbers_fill);
	return numbers;
}

const struct dfs_tag *tags_by_tag(uint32_t tag)
{
	size_t lo = 0, hi = dfs_ntags;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (dfs_tags[mid].tag == tag)
			return &dfs_tags[mid];
		if (dfs_tags[mid].tag < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct dfs_tag *tags_by_keyword(const char *keyword)
{
	for (size_t i = 0; i < dfs_ntags; i++)
		if (strcmp(dfs_tags[i].keyword, keyword) == 0)
			return &dfs_tags[i];
	return NULL;
}

/* VRs of the table's tags (and ModalitiesInStudy), so a query on them
 * needs no dictionary (GDCM is loaded only for other tags) */
static const struct { uint32_t tag; char vr[3]; } table_vrs[] = {
	{ 0x00080005, "CS" },
	{ 0x00080016, "UI" },
	{ 0x00080018, "UI" },
	{ 0x00080020, "DA" },
	{ 0x00080021, "DA" },
	{ 0x00080030, "TM" },
	{ 0x00080031, "TM" },
	{ 0x00080032, "TM" },
	{ 0x00080050, "SH" },
	{ 0x00080060, "CS" },
	{ 0x00080061, "CS" },
	{ 0x00080070, "LO" },
	{ 0x00080090, "PN" },
	{ 0x00080201, "SH" },
	{ 0x00081030, "LO" },
	{ 0x0008103E, "LO" },
	{ 0x00100010, "PN" },
	{ 0x00100020, "LO" },
	{ 0x00100030, "DA" },
	{ 0x00100040, "CS" },
	{ 0x00180015, "CS" },
	{ 0x00180050, "DS" },
	{ 0x00180086, "IS" },
	{ 0x0020000D, "UI" },
	{ 0x0020000E, "UI" },
	{ 0x00200010, "SH" },
	{ 0x00200011, "IS" },
	{ 0x00200013, "IS" },
	{ 0x00200032, "DS" },
	{ 0x00200037, "DS" },
	{ 0x00200100, "IS" },
	{ 0x00280002, "US" },
	{ 0x00280004, "CS" },
	{ 0x00280006, "US" },
	{ 0x00280008, "IS" },
	{ 0x00280010, "US" },
	{ 0x00280011, "US" },
	{ 0x00280030, "DS" },
	{ 0x00280100, "US" },
	{ 0x00280101, "US" },
	{ 0x00280102, "US" },
	{ 0x00280103, "US" },
	{ 0x00280301, "CS" },
	{ 0x00281050, "DS" },
	{ 0x00281051, "DS" },
	{ 0x00281052, "DS" },
	{ 0x00281053, "DS" },
	{ 0x00400244, "DA" },
	{ 0x00400245, "TM" },
};

static int table_vr(uint32_t tag, char vr[3])
{
	for (size_t i = 0; i < sizeof(table_vrs) / sizeof(table_vrs[0]); i++)
		if (table_vrs[i].tag == tag) {
			memcpy(vr, table_vrs[i].vr, 3);
			return 0;
		}
	return dcmdict_by_tag(tag, vr, NULL, 0);
}

int tags_parse(const char *s, uint32_t *tag, char vr[3])
{
	const struct dfs_tag *t;
	size_t n = strlen(s);
	vr[0] = 'U';
	vr[1] = 'N';
	vr[2] = 0;
	if (n == 8 && strspn(s, "0123456789abcdefABCDEF") == 8) {
		*tag = (uint32_t)strtoul(s, NULL, 16);
		table_vr(*tag, vr);
		return 0;
	}
	if (n == 11 && s[0] == '(' && s[5] == ',' && s[10] == ')' &&
	    strspn(s + 1, "0123456789abcdefABCDEF") == 4 &&
	    strspn(s + 6, "0123456789abcdefABCDEF") == 4) {
		char h[9];
		memcpy(h, s + 1, 4);
		memcpy(h + 4, s + 6, 4);
		h[8] = 0;
		*tag = (uint32_t)strtoul(h, NULL, 16);
		table_vr(*tag, vr);
		return 0;
	}
	if ((t = tags_by_keyword(s))) {
		*tag = t->tag;
		table_vr(*tag, vr);
		return 0;
	}
	return dcmdict_by_keyword(s, tag, vr);
}

int tags_parse_list(const char *list, uint32_t **out, size_t *n, char *msg,
		    size_t msglen)
{
	char *dup = strdup(list ? list : ""), *save = NULL;
	uint32_t *v = NULL;
	size_t k = 0;
	if (!dup)
		return -ENOMEM;
	for (char *t = strtok_r(dup, ",:", &save); t; t = strtok_r(NULL, ",:", &save)) {
		uint32_t tag;
		char vr[3];
		while (*t == ' ')
			t++;
		if (!*t)
			continue;
		if (tags_parse(t, &tag, vr)) {
			snprintf(msg, msglen, "index_tags: '%s' is neither a DICOM keyword nor a tag "
				 "in GGGGEEEE form", t);
			free(dup);
			free(v);
			return -EINVAL;
		}
		if ((tag >> 16) == 0x0002 || (tag >> 16) == 0xFFFE || (tag & 0xFFFF) == 0 ||
		    tag == 0x7FE00010) {
			snprintf(msg, msglen, "index_tags: %s (%04X,%04X) cannot be indexed "
				 "(file meta, group length, item or pixel data)", t, tag >> 16,
				 tag & 0xFFFF);
			free(dup);
			free(v);
			return -EINVAL;
		}
		uint32_t *nv = realloc(v, (k + 1) * sizeof(*v));
		if (!nv) {
			free(dup);
			free(v);
			return -ENOMEM;
		}
		v = nv;
		v[k++] = tag;
	}
	free(dup);
	*out = v;
	*n = k;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

size_t tags_sort_unique(uint32_t *v, size_t n)
{
	size_t w = 0;
	qsort(v, n, sizeof(*v), cmp_u32);
	for (size_t i = 0; i < n; i++)
		if (!w || v[w - 1] != v[i])
			v[w++] = v[i];
	return w;
}
