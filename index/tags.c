#include <string.h>
#include <pthread.h>
#include "tags.h"

const struct dfs_tag dfs_tags[] = {
	{ 0x00080005, "SpecificCharacterSet", 'I' },
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
	{ 0x00281050, "WindowCenter", 'I' },
	{ 0x00281051, "WindowWidth", 'I' },
	{ 0x00281052, "RescaleIntercept", 'I' },
	{ 0x00281053, "RescaleSlope", 'I' },
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
