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

} // namespace

extern "C" int dcmshim_decode_pixels(const void *buf, size_t len, int palette,
				     dcmshim_alloc_fn alloc, void *ctx,
				     struct dcmshim_pixels *px)
{
	std::memset(px, 0, sizeof(*px));
	try {
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
	} catch (const std::bad_alloc &) {
		return -ENOMEM;
	} catch (const std::exception &e) {
		std::snprintf(px->error, sizeof(px->error), "gdcm: %s", e.what());
	} catch (...) {
		std::snprintf(px->error, sizeof(px->error), "gdcm: unknown exception");
	}
	return DFS_EPARSE;
}
