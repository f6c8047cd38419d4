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
#include <string>
#ifdef DCMSHIM_MODULE
/* part of dicomfs-gdcm.so: see "Loading" in dcmshim.h */
#define dcmdict_by_keyword dcmshim_gdcm_dict_by_keyword
#define dcmdict_by_tag dcmshim_gdcm_dict_by_tag
#endif
extern "C" {
#include "tags.h"
}
#include "dcmshim.h"
extern "C" {
#include "error.h"
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

/* see dcmshim.h: the same dictionary look-up as dcmshim_walk.cc's dict_vr() */
extern "C" int dcmshim_dict_vr(uint32_t tag, const char *creator, size_t creator_len,
			       char vr[2])
{
	vr[0] = 'U';
	vr[1] = 'N';
	try {
		const gdcm::Dicts &dicts = gdcm::Global::GetInstance().GetDicts();
		gdcm::Tag t((uint16_t)(tag >> 16), (uint16_t)(tag & 0xffff));
		gdcm::VR::VRType vt;
		if (t.IsPrivate()) {
			if (t.IsPrivateCreator()) {
				vr[0] = 'L';
				vr[1] = 'O';
				return 0;
			}
			std::string owner;
			if (creator && !t.IsGroupLength() && !t.IsIllegal())
				owner = std::string(creator, creator_len).c_str();
			while (!owner.empty() && owner[owner.size() - 1] == ' ')
				owner.erase(owner.size() - 1, 1);
			if (owner.empty())
				return 0;
			const gdcm::DictEntry &e = dicts.GetDictEntry(t, owner.c_str());
			vt = (gdcm::VR::VRType)e.GetVR();
		} else {
			const gdcm::DictEntry &e = dicts.GetDictEntry(t);
			vt = (gdcm::VR::VRType)e.GetVR();
		}
		const char *s = nullptr;
		switch (vt) {
		case gdcm::VR::INVALID: return 0;
		case gdcm::VR::US_SS: s = "xs"; break;
		case gdcm::VR::US_SS_OW: case gdcm::VR::US_OW: s = "xw"; break;
		case gdcm::VR::OB_OW: s = "bw"; break;
		default: s = gdcm::VR::GetVRString(vt); break;
		}
		if (s && std::strlen(s) == 2) {
			vr[0] = s[0];
			vr[1] = s[1];
		}
		return 0;
	} catch (...) {
		return DFS_EPARSE;
	}
}
