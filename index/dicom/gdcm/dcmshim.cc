/*
 * dcmshim.cc - GDCM behind a C interface (see dcmshim.h).
 *
 * GDCM reads from an std::istream; we give it one over the caller's buffer
 * (membuf, no copy), which halves the cost of reading from a filename (GDCM
 * seeks a lot). ReadUpToTag(Pixel Data) with Pixel Data in skiptags keeps it
 * from touching pixels even when the buffer holds them.
 */
#include <cstring>
#include <exception>
#include <set>
#include <sstream>
#include <streambuf>
#include <istream>

#include <gdcmReader.h>
#include <gdcmStringFilter.h>
#include <gdcmTrace.h>
#include <gdcmGlobal.h>
#include <gdcmDicts.h>
#include <gdcmDataSet.h>

#include "dcmshim.h"
#include "dcmshim_membuf.hh"
extern "C" {
#include "error.h"
}

namespace {


bool vr_is_string(gdcm::VR::VRType vr)
{
	switch (vr) {
	case gdcm::VR::AE: case gdcm::VR::AS: case gdcm::VR::CS:
	case gdcm::VR::DA: case gdcm::VR::DS: case gdcm::VR::DT:
	case gdcm::VR::IS: case gdcm::VR::LO: case gdcm::VR::LT:
	case gdcm::VR::PN: case gdcm::VR::SH: case gdcm::VR::ST:
	case gdcm::VR::TM: case gdcm::VR::UC: case gdcm::VR::UI:
	case gdcm::VR::UR: case gdcm::VR::UT:
		return true;
	default:
		return false;
	}
}

bool vr_is_number(gdcm::VR::VRType vr)
{
	switch (vr) {
	case gdcm::VR::US: case gdcm::VR::UL: case gdcm::VR::SS:
	case gdcm::VR::SL: case gdcm::VR::FL: case gdcm::VR::FD:
	case gdcm::VR::AT:
		return true;
	default:
		return false;
	}
}

void report(const gdcm::File &file, const gdcm::DataElement &de,
	    dcmshim_attr_fn fn, void *ctx)
{
	const gdcm::Tag &t = de.GetTag();
	gdcm::VR vr = de.GetVR();
	if (vr == gdcm::VR::INVALID || vr == gdcm::VR::UN) {
		const gdcm::Dicts &dicts = gdcm::Global::GetInstance().GetDicts();
		if (!t.IsPrivate()) {
			const gdcm::DictEntry &e = dicts.GetDictEntry(t);
			vr = e.GetVR();
		}
	}
	gdcm::VR::VRType vt = (gdcm::VR::VRType)vr;
	uint32_t tag = ((uint32_t)t.GetGroup() << 16) | t.GetElement();
	if (vr_is_string(vt) || vt == gdcm::VR::INVALID || vt == gdcm::VR::UN) {
		const gdcm::ByteValue *bv = de.GetByteValue();
		const char *name = vr_is_string(vt) ? gdcm::VR::GetVRString(vt) : "UN";
		if (!bv) {
			fn(ctx, tag, name, "", 0);
			return;
		}
		fn(ctx, tag, name, bv->GetPointer(), bv->GetLength());
		return;
	}
	if (vr_is_number(vt)) {
		gdcm::StringFilter sf;
		sf.SetFile(file);
		std::string s = sf.ToString(t);
		fn(ctx, tag, gdcm::VR::GetVRString(vt), s.data(), s.size());
	}
}

} // namespace

extern "C" void dcmshim_init(void)
{
	try {
		gdcm::Trace::SetDebug(false);
		gdcm::Trace::SetWarning(false);
		gdcm::Trace::SetError(false);
		(void)gdcm::Global::GetInstance().GetDicts();
	} catch (...) {
	}
}

extern "C" int dcmshim_parse_header(const void *buf, size_t len, int whole,
				    const uint32_t *tags, size_t ntags,
				    dcmshim_attr_fn fn, void *ctx,
				    struct dcmshim_info *info)
{
	std::memset(info, 0, sizeof(*info));
	try {
		gdcm::Reader reader;
		int rc = dcmshim::read_header(reader, buf, len, whole, info);
		if (rc)
			return rc;
		const gdcm::File &file = reader.GetFile();
		const gdcm::DataSet &ds = file.GetDataSet();
		/* SpecificCharacterSet first, then the rest in tag order */
		for (size_t i = 0; i < ntags; i++) {
			if (tags[i] != 0x00080005)
				continue;
			gdcm::Tag t(0x0008, 0x0005);
			if (ds.FindDataElement(t))
				report(file, ds.GetDataElement(t), fn, ctx);
		}
		for (size_t i = 0; i < ntags; i++) {
			if (tags[i] == 0x00080005)
				continue;
			gdcm::Tag t((uint16_t)(tags[i] >> 16), (uint16_t)tags[i]);
			if (ds.FindDataElement(t))
				report(file, ds.GetDataElement(t), fn, ctx);
		}
		return 0;
	} catch (const std::exception &e) {
		std::snprintf(info->error, sizeof(info->error), "gdcm: %s", e.what());
	} catch (...) {
		std::snprintf(info->error, sizeof(info->error), "gdcm: unknown exception");
	}
	return DFS_EPARSE;
}

#ifndef DCMSHIM_MODULE
/* the shim linked in directly (tests/fuzz/run.sh), without the loader
 * (dcmshim_load.c): there is no way into GDCM to guard */
extern "C" void dcmshim_set_guard(void (*fn)(void *ctx), void *ctx)
{
	(void)fn;
	(void)ctx;
}
#endif
