// dcmshim_membuf.hh - an std::streambuf over a caller's buffer, seekable,
// no copy: how the shim hands header bytes to GDCM (which seeks a lot).
// Internal to the dicomfs-gdcm.so module.
#ifndef DICOMFS_DCMSHIM_MEMBUF_HH
#define DICOMFS_DCMSHIM_MEMBUF_HH
#include <cstddef>
#include <ios>
#include <streambuf>

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

} // namespace dcmshim
#endif
