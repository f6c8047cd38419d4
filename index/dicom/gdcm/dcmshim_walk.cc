/*
 * dcmshim_walk.cc - the whole data set through GDCM, as callbacks (see
 * dcmshim.h, dcmshim_walk()).
 *
 * Design notes
 * - GDCM reads from the caller's buffer (membuf, no copy), stopping before
 *   top-level Pixel Data exactly as dcmshim_parse_header() does.
 * - Byte order: GDCM already swaps binary values of Explicit VR Big Endian
 *   data sets into host order while reading (ValueIO by VR size); on the
 *   little-endian hosts we build for that is little-endian. A big-endian
 *   host swaps here (host_le()).
 * - File offsets: GDCM does not keep them. A bulk value is located in the
 *   buffer by its tag, a plausible element header whose length equals the
 *   value length, and a byte-for-byte comparison of the value; the search
 *   resumes where the previous one ended (GDCM's order is the file order in
 *   sane files). A value not found (big-endian words, deflated data, GDCM
 *   having rewritten something) gets offset -1 and the caller inlines it.
 * - Every C++ exception is caught in dcmshim_walk(); an exception in the
 *   middle leaves the callbacks unbalanced only in the sense that the walk
 *   stops: the caller sees DFS_EPARSE or partial and closes what it opened.
 */
#include <cstring>
#include <exception>
#include <istream>
#include <set>
#include <streambuf>
#include <string>
#include <vector>

#include <gdcmReader.h>
#include <gdcmGlobal.h>
#include <gdcmDicts.h>
#include <gdcmDataSet.h>
#include <gdcmSequenceOfItems.h>
#include <gdcmSequenceOfFragments.h>

#include "dcmshim.h"
#include "dcmshim_membuf.hh"
extern "C" {
#include "error.h"
}

namespace {


bool host_le()
{
	const uint16_t one = 1;
	return *reinterpret_cast<const uint8_t *>(&one) == 1;
}

unsigned vr_word(gdcm::VR::VRType vt)
{
	switch (vt) {
	case gdcm::VR::US: case gdcm::VR::SS: case gdcm::VR::OW:
	case gdcm::VR::AT:
		return 2;
	case gdcm::VR::UL: case gdcm::VR::SL: case gdcm::VR::FL:
	case gdcm::VR::OF: case gdcm::VR::OL:
		return 4;
	case gdcm::VR::FD: case gdcm::VR::OD: case gdcm::VR::SV:
	case gdcm::VR::UV: case gdcm::VR::OV:
		return 8;
	default:
		return 1;
	}
}

bool vr_binary(gdcm::VR::VRType vt)
{
	switch (vt) {
	case gdcm::VR::OB: case gdcm::VR::OW: case gdcm::VR::OF:
	case gdcm::VR::OD: case gdcm::VR::OL: case gdcm::VR::OV:
	case gdcm::VR::UN:
		return true;
	default:
		return false;
	}
}

uint16_t rd16(const uint8_t *p, bool be)
{
	return be ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

uint32_t rd32(const uint8_t *p, bool be)
{
	return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
		  : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

struct walker {
	const uint8_t *buf;
	size_t len;
	bool offsets;
	size_t bulk_min;
	size_t cursor;
	const dcmshim_walk_ops *ops;
	void *ctx;
	const gdcm::Dicts *dicts;
	std::vector<const gdcm::DataSet *> chain; /* enclosing data sets */
	std::string tmp;

	/* value offset of an element with this tag and value, or -1 */
	int64_t find_at(uint32_t tag, const uint8_t *v, size_t vl, size_t from,
			size_t to) const
	{
		for (int be = 0; be < 2; be++) {
			uint8_t pat[4];
			if (be) {
				pat[0] = (uint8_t)(tag >> 24); pat[1] = (uint8_t)(tag >> 16);
				pat[2] = (uint8_t)(tag >> 8); pat[3] = (uint8_t)tag;
			} else {
				pat[0] = (uint8_t)(tag >> 16); pat[1] = (uint8_t)(tag >> 24);
				pat[2] = (uint8_t)tag; pat[3] = (uint8_t)(tag >> 8);
			}
			size_t pos = from;
			while (pos + 8 <= to) {
				const void *hit = memmem(buf + pos, to - pos, pat, 4);
				if (!hit)
					break;
				size_t p = (size_t)((const uint8_t *)hit - buf);
				pos = p + 1;
				if (p + 8 > len)
					break;
				size_t cands[2];
				int nc = 0;
				if (rd32(buf + p + 4, be) == vl)
					cands[nc++] = p + 8; /* implicit */
				else if (rd16(buf + p + 6, be) == vl)
					cands[nc++] = p + 8; /* explicit, short */
				if (p + 12 <= len && buf[p + 6] == 0 && buf[p + 7] == 0 &&
				    rd32(buf + p + 8, be) == vl)
					cands[nc++] = p + 12; /* explicit, long */
				for (int c = 0; c < nc; c++)
					if (cands[c] + vl <= len && !memcmp(buf + cands[c], v, vl))
						return (int64_t)cands[c];
			}
		}
		return -1;
	}

	int64_t locate(uint32_t tag, const uint8_t *v, size_t vl, bool fragments)
	{
		if (!offsets || vl < bulk_min || vl == 0 || vl > len)
			return -1;
		int64_t off = -1;
		if (fragments) {
			/* the item stream itself: starts with an item tag */
			const void *hit = memmem(buf + cursor, len - cursor, v, vl);
			if (!hit && cursor)
				hit = memmem(buf, len, v, vl);
			if (hit)
				off = (const uint8_t *)hit - buf;
		} else {
			off = find_at(tag, v, vl, cursor, len);
			if (off < 0 && cursor)
				off = find_at(tag, v, vl, 0, len);
		}
		if (off >= 0)
			cursor = (size_t)off + vl;
		return off;
	}

	/* a public or private dictionary VR for tag in ds */
	gdcm::VR::VRType dict_vr(const gdcm::Tag &t, const gdcm::DataSet &ds)
	{
		if (t.IsPrivate()) {
			if (t.IsPrivateCreator())
				return gdcm::VR::LO;
			std::string owner = ds.GetPrivateCreator(t);
			if (owner.empty())
				return gdcm::VR::UN;
			const gdcm::DictEntry &e = dicts->GetDictEntry(t, owner.c_str());
			gdcm::VR::VRType vt = (gdcm::VR::VRType)e.GetVR();
			return vt == gdcm::VR::INVALID ? gdcm::VR::UN : vt;
		}
		const gdcm::DictEntry &e = dicts->GetDictEntry(t);
		gdcm::VR::VRType vt = (gdcm::VR::VRType)e.GetVR();
		return vt == gdcm::VR::INVALID ? gdcm::VR::UN : vt;
	}

	/* first value of a US element in the nearest data set holding it */
	bool find_us(uint16_t g, uint16_t e, bool nearest_only, unsigned *out)
	{
		gdcm::Tag t(g, e);
		for (size_t i = chain.size(); i-- > 0;) {
			if (chain[i]->FindDataElement(t)) {
				const gdcm::ByteValue *bv = chain[i]->GetDataElement(t).GetByteValue();
				if (!bv || bv->GetLength() < 2)
					return false;
				const uint8_t *p = (const uint8_t *)bv->GetPointer();
				*out = host_le() ? (unsigned)(p[0] | p[1] << 8)
						 : (unsigned)(p[1] | p[0] << 8);
				return true;
			}
			if (nearest_only)
				return false;
		}
		return false;
	}

	gdcm::VR::VRType resolve(gdcm::VR::VRType vt, const gdcm::Tag &t)
	{
		unsigned v;
		switch (vt) {
		case gdcm::VR::US_SS:
			return find_us(0x0028, 0x0103, false, &v) && v == 1 ? gdcm::VR::SS
									    : gdcm::VR::US;
		case gdcm::VR::US_SS_OW:
		case gdcm::VR::US_OW:
			if (t == gdcm::Tag(0x0028, 0x3006))
				return find_us(0x0028, 0x3002, true, &v) && v == 1 ? gdcm::VR::US
										   : gdcm::VR::OW;
			return gdcm::VR::OW;
		case gdcm::VR::OB_OW:
			return gdcm::VR::OW;
		default:
			return vt;
		}
	}

	void element(uint32_t tag, gdcm::VR::VRType vt, const char *p, size_t n,
		     bool fragments = false)
	{
		const uint8_t *v = (const uint8_t *)p;
		unsigned w = vr_word(vt);
		if (w > 1 && !host_le() && !fragments) {
			tmp.assign(p, n);
			for (size_t i = 0; i + w <= n; i += w)
				for (unsigned a = 0, b = w - 1; a < b; a++, b--)
					std::swap(tmp[i + a], tmp[i + b]);
			v = (const uint8_t *)tmp.data();
		}
		int64_t off = vr_binary(vt) ? locate(tag, v, n, fragments) : -1;
		const char *s = gdcm::VR::GetVRString(vt);
		char vr[2] = { 'U', 'N' };
		if (s && std::strlen(s) == 2) {
			vr[0] = s[0];
			vr[1] = s[1];
		}
		if (ops->element)
			ops->element(ctx, tag, vr, v, n, off);
	}

	void sequence(uint32_t tag, const gdcm::SequenceOfItems *sq)
	{
		if (ops->seq_begin)
			ops->seq_begin(ctx, tag);
		size_t n = sq ? sq->GetNumberOfItems() : 0;
		for (size_t i = 1; i <= n; i++) {
			if (ops->item_begin)
				ops->item_begin(ctx);
			dataset(sq->GetItem(i).GetNestedDataSet());
			if (ops->item_end)
				ops->item_end(ctx);
		}
		if (ops->seq_end)
			ops->seq_end(ctx, tag);
	}

	void fragments(uint32_t tag, const gdcm::SequenceOfFragments *sf)
	{
		std::string s;
		auto put = [&s](const char *p, size_t n, uint32_t vl) {
			uint8_t h[8] = { 0xFE, 0xFF, 0x00, 0xE0, (uint8_t)vl,
					 (uint8_t)(vl >> 8), (uint8_t)(vl >> 16),
					 (uint8_t)(vl >> 24) };
			s.append((const char *)h, 8);
			s.append(p, n);
		};
		const gdcm::BasicOffsetTable &bot = sf->GetTable();
		const gdcm::ByteValue *bbv = bot.GetByteValue();
		if (bbv)
			put(bbv->GetPointer(), bbv->GetLength(), bbv->GetLength());
		else
			put("", 0, 0);
		for (size_t i = 0; i < sf->GetNumberOfFragments(); i++) {
			const gdcm::ByteValue *fb = sf->GetFragment(i).GetByteValue();
			if (fb)
				put(fb->GetPointer(), fb->GetLength(), fb->GetLength());
			else
				put("", 0, 0);
		}
		element(tag, gdcm::VR::OB, s.data(), s.size(), true);
	}

	void dataset(const gdcm::DataSet &ds)
	{
		chain.push_back(&ds);
		const gdcm::Tag cs(0x0008, 0x0005);
		if (ops->charset && ds.FindDataElement(cs)) {
			const gdcm::ByteValue *bv = ds.GetDataElement(cs).GetByteValue();
			if (bv)
				ops->charset(ctx, bv->GetPointer(), bv->GetLength());
			else
				ops->charset(ctx, "", 0);
		}
		for (gdcm::DataSet::ConstIterator it = ds.Begin(); it != ds.End(); ++it) {
			const gdcm::DataElement &de = *it;
			const gdcm::Tag &t = de.GetTag();
			uint16_t g = t.GetGroup();
			if (t.GetElement() == 0 || g == 0x0002 || g == 0xFFFE)
				continue;
			uint32_t tag = (uint32_t)g << 16 | t.GetElement();
			gdcm::VR::VRType vt = (gdcm::VR::VRType)de.GetVR();
			if (vt == gdcm::VR::INVALID || vt == gdcm::VR::UN)
				vt = dict_vr(t, ds);
			vt = resolve(vt, t);
			const gdcm::SequenceOfItems *sq = nullptr;
			if (!de.IsEmpty())
				sq = dynamic_cast<const gdcm::SequenceOfItems *>(&de.GetValue());
			if (sq) {
				sequence(tag, sq);
				continue;
			}
			const gdcm::SequenceOfFragments *sf = de.GetSequenceOfFragments();
			if (sf) {
				fragments(tag, sf);
				continue;
			}
			const gdcm::ByteValue *bv = de.GetByteValue();
			if (vt == gdcm::VR::SQ) {
				if (!bv || bv->GetLength() == 0) {
					sequence(tag, nullptr);
					continue;
				}
				gdcm::SmartPointer<gdcm::SequenceOfItems> s2;
				try {
					s2 = de.GetValueAsSQ();
				} catch (...) {
				}
				if (s2) {
					sequence(tag, s2);
					continue;
				}
				vt = gdcm::VR::UN;
			}
			if (bv)
				element(tag, vt, bv->GetPointer(), bv->GetLength());
			else
				element(tag, vt, "", 0);
		}
		chain.pop_back();
	}
};

} // namespace

extern "C" int dcmshim_walk(const void *buf, size_t len, int whole,
			    size_t bulk_min, const struct dcmshim_walk_ops *ops,
			    void *ctx, struct dcmshim_info *info)
{
	std::memset(info, 0, sizeof(*info));
	try {
		gdcm::Reader reader;
		int rc = dcmshim::read_header(reader, buf, len, whole, info);
		if (rc)
			return rc;
		const gdcm::File &file = reader.GetFile();
		const gdcm::DataSet &ds = file.GetDataSet();
		walker w;
		w.buf = static_cast<const uint8_t *>(buf);
		w.len = len;
		w.offsets = whole != 1;
		w.bulk_min = bulk_min ? bulk_min : 1;
		w.cursor = 0;
		w.ops = ops;
		w.ctx = ctx;
		w.dicts = &gdcm::Global::GetInstance().GetDicts();
		w.dataset(ds);
		return 0;
	} catch (const std::exception &e) {
		std::snprintf(info->error, sizeof(info->error), "gdcm: %s", e.what());
	} catch (...) {
		std::snprintf(info->error, sizeof(info->error), "gdcm: unknown exception");
	}
	return DFS_EPARSE;
}
