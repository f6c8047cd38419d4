/*
 * dcmshim_pixels.cc - pixel decoding with GDCM behind a C interface (see
 * dcmshim.h). gdcm::ImageReader reads the whole file from the caller's
 * buffer (no copy); Bitmap::GetBuffer decodes into the caller's buffer.
 * The photometric interpretation and pixel format are read after decoding:
 * GDCM updates them when the codec changed the colour space (JPEG YBR ->
 * RGB) or the sample layout. Every exception is caught here.
 */
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <istream>
#include <streambuf>

#include <gdcmImageReader.h>
#include <gdcmImage.h>
#include <gdcmImageApplyLookupTable.h>
#include <gdcmPhotometricInterpretation.h>
#include <gdcmPixelFormat.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmTransferSyntax.h>

#include "dcmshim.h"
#include "dcmshim_membuf.hh"
extern "C" {
#include "error.h"
}

namespace {

using dcmshim::membuf;

int fill(const gdcm::Image &img, dcmshim_alloc_fn alloc, void *ctx,
	 struct dcmshim_pixels *px)
{
	unsigned long n = img.GetBufferLength();
	if (n == 0) {
		std::snprintf(px->error, sizeof(px->error), "gdcm: empty pixel buffer");
		return DFS_EPARSE;
	}
	char *dst = static_cast<char *>(alloc(ctx, n));
	if (!dst)
		return -ENOMEM;
	if (!img.GetBuffer(dst)) {
		std::snprintf(px->error, sizeof(px->error),
			      "gdcm could not decode the pixel data");
		return DFS_EPARSE;
	}
	px->len = n;
	px->cols = img.GetDimension(0);
	px->rows = img.GetDimension(1);
	px->frames = img.GetNumberOfDimensions() >= 3 ? img.GetDimension(2) : 1;
	const gdcm::PixelFormat &pf = img.GetPixelFormat();
	px->spp = pf.GetSamplesPerPixel();
	px->bits_alloc = pf.GetBitsAllocated();
	px->bits_stored = pf.GetBitsStored();
	px->pixrep = pf.GetPixelRepresentation();
	px->is_float = pf.GetScalarType() == gdcm::PixelFormat::FLOAT32 ? 4 :
		       pf.GetScalarType() == gdcm::PixelFormat::FLOAT64 ? 8 : 0;
	px->planar = img.GetPlanarConfiguration();
	const char *pi = gdcm::PhotometricInterpretation::GetPIString(
		img.GetPhotometricInterpretation());
	std::snprintf(px->photometric, sizeof(px->photometric), "%s", pi ? pi : "");
	/* GDCM pads PI strings to even length */
	size_t l = std::strlen(px->photometric);
	while (l && px->photometric[l - 1] == ' ')
		px->photometric[--l] = 0;
	return 0;
}

/* run f(), turning every exception into a return code (none crosses the C
 * interface) */
template <class F> int guarded(struct dcmshim_pixels *px, F f)
{
	try {
		return f();
	} catch (const std::bad_alloc &) {
		return -ENOMEM;
	} catch (const std::exception &e) {
		std::snprintf(px->error, sizeof(px->error), "gdcm: %s", e.what());
	} catch (...) {
		std::snprintf(px->error, sizeof(px->error), "gdcm: unknown exception");
	}
	return DFS_EPARSE;
}

} // namespace

extern "C" int dcmshim_decode_pixels(const void *buf, size_t len, int palette,
				     dcmshim_alloc_fn alloc, void *ctx,
				     struct dcmshim_pixels *px)
{
	std::memset(px, 0, sizeof(*px));
	return guarded(px, [&]() -> int {
		membuf mb(static_cast<const char *>(buf), len);
		std::istream is(&mb);
		gdcm::ImageReader reader;
		reader.SetStream(is);
		if (!reader.Read()) {
			std::snprintf(px->error, sizeof(px->error),
				      "gdcm could not read the image");
			return DFS_EPARSE;
		}
		const gdcm::Image &img = reader.GetImage();
		if (palette && img.GetPhotometricInterpretation() ==
				       gdcm::PhotometricInterpretation::PALETTE_COLOR) {
			gdcm::ImageApplyLookupTable lut;
			lut.SetInput(img);
			if (!lut.Apply()) {
				std::snprintf(px->error, sizeof(px->error),
					      "gdcm could not apply the palette");
				return DFS_EPARSE;
			}
			return fill(lut.GetOutput(), alloc, ctx, px);
		}
		return fill(img, alloc, ctx, px);
	});
}

extern "C" int dcmshim_decode_frame(const void *cs, size_t len, const struct dcmshim_frame *f,
				    dcmshim_alloc_fn alloc, void *ctx,
				    struct dcmshim_pixels *px)
{
	std::memset(px, 0, sizeof(*px));
	if (len > 0xFFFFFFF0u) {
		std::snprintf(px->error, sizeof(px->error), "a frame of 4 GiB or more");
		return DFS_EPARSE;
	}
	return guarded(px, [&]() -> int {
		gdcm::TransferSyntax ts(gdcm::TransferSyntax::GetTSType(f->ts));
		if (ts == gdcm::TransferSyntax::TS_END || !ts.IsEncapsulated()) {
			std::snprintf(px->error, sizeof(px->error),
				      "transfer syntax %.64s is not a compressed one GDCM knows", f->ts);
			return DFS_EPARSE;
		}
		gdcm::Image img;
		img.SetNumberOfDimensions(2);
		img.SetDimension(0, f->cols);
		img.SetDimension(1, f->rows);
		img.SetPixelFormat(gdcm::PixelFormat((unsigned short)f->spp,
			(unsigned short)f->bits_alloc, (unsigned short)f->bits_stored,
			(unsigned short)f->high_bit, (unsigned short)f->pixrep));
		gdcm::PhotometricInterpretation::PIType pt =
			gdcm::PhotometricInterpretation::GetPIType(f->photometric);
		if (pt == gdcm::PhotometricInterpretation::UNKNOWN ||
		    pt == gdcm::PhotometricInterpretation::PI_END) {
			std::snprintf(px->error, sizeof(px->error),
				      "GDCM does not know PhotometricInterpretation %.32s", f->photometric);
			return DFS_EPARSE;
		}
		img.SetPhotometricInterpretation(pt);
		if (f->spp == 3)
			img.SetPlanarConfiguration(f->planar);
		img.SetTransferSyntax(ts);
		gdcm::DataElement de(gdcm::Tag(0x7fe0, 0x0010));
		gdcm::SmartPointer<gdcm::SequenceOfFragments> sq = new gdcm::SequenceOfFragments;
		gdcm::Fragment frag;
		frag.SetByteValue(static_cast<const char *>(cs), (uint32_t)len);
		sq->AddFragment(frag);
		de.SetValue(*sq);
		de.SetVR(gdcm::VR::OB);
		img.SetDataElement(de);
		return fill(img, alloc, ctx, px);
	});
}
