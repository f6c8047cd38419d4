// dcmshim_membuf.hh - an std::streambuf over a caller's buffer, seekable,
// no copy: how the shim hands header bytes to GDCM (which seeks a lot).
// Internal to the dicomfs-gdcm.so module.
#ifndef DICOMFS_DCMSHIM_MEMBUF_HH
#define DICOMFS_DCMSHIM_MEMBUF_HH
#include <cstddef>
#include <cstdio>
#include <ios>
#include <istream>
#include <set>
#include <streambuf>

#include <gdcmReader.h>

#include "dcmshim.h"
#include "error.h"

namespace dcmshim {

struct membuf : std::streambuf {
	membuf(const char *b, size_t n)
	{
		char *p = const_cast<char *>(b);
		setg(p, p, p + n);
	}
	pos_type seekoff(off_type off, std::ios_base::seekdir dir,
			 std::ios_base::openmode) override
	{
		char *target;
		if (dir == std::ios_base::beg)
			target = eback() + off;
		else if (dir == std::ios_base::cur)
			target = gptr() + off;
		else
			target = egptr() + off;
		if (target < eback() || target > egptr())
			return pos_type(off_type(-1));
		setg(eback(), target, egptr());
		return pos_type(target - eback());
	}
	pos_type seekpos(pos_type pos, std::ios_base::openmode m) override
	{
		return seekoff(off_type(pos), std::ios_base::beg, m);
	}
};

/*
 * Parse the header bytes [buf, len) into reader: up to Pixel Data (skipped)
 * or, with whole, everything. Fills info->ts and info->partial (GDCM failed
 * after a non-empty data set). 0, or DFS_EPARSE with info->error set.
 * The one way every entry point of the shim reads a header.
 */
inline int read_header(gdcm::Reader &reader, const void *buf, size_t len, int whole,
		       struct dcmshim_info *info)
{
	membuf mb(static_cast<const char *>(buf), len);
	std::istream is(&mb);
	reader.SetStream(is);
	std::set<gdcm::Tag> skip;
	skip.insert(gdcm::Tag(0x7fe0, 0x0008));
	skip.insert(gdcm::Tag(0x7fe0, 0x0009));
	skip.insert(gdcm::Tag(0x7fe0, 0x0010));
	bool ok = whole ? reader.Read()
			: reader.ReadUpToTag(gdcm::Tag(0x7fe0, 0x0008), skip);
	const gdcm::File &file = reader.GetFile();
	if (!ok) {
		if (file.GetDataSet().IsEmpty()) {
			std::snprintf(info->error, sizeof(info->error),
				      "gdcm could not read the data set");
			return DFS_EPARSE;
		}
		info->partial = 1;
	}
	const char *ts = gdcm::TransferSyntax::GetTSString(
		file.GetHeader().GetDataSetTransferSyntax());
	if (ts)
		std::snprintf(info->ts, sizeof(info->ts), "%s", ts);
	return 0;
}

} // namespace dcmshim
#endif
