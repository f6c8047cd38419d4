// dcmdict.cc - keyword <-> tag through GDCM's public data dictionary
// (declared in tags.h). Every exception is caught here.
#include <cstring>
#include <cstdio>
#include <cerrno>
#include <gdcmGlobal.h>
#include <gdcmDicts.h>
#include <gdcmDict.h>
#include <gdcmDictEntry.h>
#include <gdcmVR.h>
#ifdef DCMSHIM_MODULE
/* part of dicomfs-gdcm.so: see "Loading" in dcmshim.h */
#define dcmdict_by_keyword dcmshim_gdcm_dict_by_keyword
#define dcmdict_by_tag dcmshim_gdcm_dict_by_tag
#endif
extern "C" {
#include "tags.h"
}

static void vr_copy(const gdcm::VR &vr, char out[3])
{
	const char *s = gdcm::VR::GetVRString((gdcm::VR::VRType)vr);
	if (!s || std::strlen(s) < 2 || vr == gdcm::VR::INVALID || vr == gdcm::VR::VR_END) {
		out[0] = 'U';
		out[1] = 'N';
	} else {
		out[0] = s[0];
		out[1] = s[1];
	}
	out[2] = 0;
}

extern "C" int dcmdict_by_keyword(const char *kw, uint32_t *tag, char vr[3])
{
	try {
		const gdcm::Dict &d = gdcm::Global::GetInstance().GetDicts().GetPublicDict();
		gdcm::Tag t;
		const gdcm::DictEntry &e = d.GetDictEntryByKeyword(kw, t);
		if (t == gdcm::Tag(0xffff, 0xffff) || !*kw)
			return -ENOENT;
		*tag = ((uint32_t)t.GetGroup() << 16) | t.GetElement();
		vr_copy(e.GetVR(), vr);
		return 0;
	} catch (...) {
		return -ENOENT;
	}
}

extern "C" int dcmdict_by_tag(uint32_t tag, char vr[3], char *kw, size_t kwlen)
{
	vr[0] = 'U';
	vr[1] = 'N';
	vr[2] = 0;
	if (kw && kwlen)
		kw[0] = 0;
	if ((tag >> 16) & 1)
		return -ENOENT;  /* private: no public entry */
	try {
		const gdcm::Dict &d = gdcm::Global::GetInstance().GetDicts().GetPublicDict();
		gdcm::Tag t((uint16_t)(tag >> 16), (uint16_t)(tag & 0xffff));
		const char *k = d.GetKeywordFromTag(t);
		if (!k || !*k)
			return -ENOENT;
		const gdcm::DictEntry &e = d.GetDictEntry(t);
		vr_copy(e.GetVR(), vr);
		if (kw && kwlen)
			std::snprintf(kw, kwlen, "%s", k);
		return 0;
	} catch (...) {
		return -ENOENT;
	}
}
