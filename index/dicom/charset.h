/*
 * charset.h - DICOM Specific Character Set (0008,0005) to UTF-8.
 *
 * Contract: charset_to_utf8() converts the raw bytes of one element value
 * (any text VR: PN, LO, SH, ST, LT, UT, UC, CS, ...) from the character
 * repertoire named by the file's SpecificCharacterSet value (the raw value,
 * possibly multi-valued with backslashes, e.g. "\\ISO 2022 IR 87") to UTF-8.
 *
 * - Empty or absent SpecificCharacterSet means the default repertoire
 *   (ISO-IR 6, ASCII); bytes >= 0x80 are then decoded as ISO-8859-1
 *   (what pydicom does in practice) rather than dropped.
 * - Supported: ISO_IR 6/100/101/109/110/144/127/126/138/148/203/13/166,
 *   ISO_IR 192 (UTF-8), GB18030, GBK, and the ISO 2022 forms
 *   (ISO 2022 IR 6/100/101/109/110/144/127/126/138/148/203/13/166/87/159/149/58)
 *   with escape-sequence switching as in PS3.5 6.1.2.5 (code extension);
 *   for PN, the escape state resets at each '^' and '=' delimiter, and for
 *   all VRs at each '\\' and control character (CR, LF, FF, TAB).
 * - Unknown terms are treated like ISO_IR 100 and reported through the
 *   return value DFS_WARN_CHARSET (conversion still produced).
 * - Undecodable bytes become U+FFFD; bytes are never dropped silently,
 *   except trailing NUL padding (UI style), which is stripped.  An interior
 *   NUL becomes U+FFFD.  ISO_IR 13 without code extensions is read as CP932
 *   (Shift_JIS superset), as real files carry Shift_JIS there.  Escape
 *   sequences designating a set not named in SpecificCharacterSet are
 *   honoured but reported with DFS_WARN_CHARSET.
 * - The output is NUL-terminated, never contains NUL, is valid UTF-8.
 *
 * Returns 0 on success, DFS_WARN_CHARSET (positive) when something could not
 * be decoded exactly (the output is still usable), or -ENOMEM. *out is
 * malloc()ed by the callee and freed by the caller with free(); *outlen is
 * its length without the terminator.
 *
 * Threading: reentrant; iconv descriptors are per call or per thread,
 * never shared unlocked between threads.
 */
#ifndef DICOMFS_CHARSET_H
#define DICOMFS_CHARSET_H
#include <stddef.h>

#define DFS_WARN_CHARSET 1

int charset_to_utf8(const char *specific_charset, size_t cs_len,
                    const char *in, size_t inlen, int is_pn,
                    char **out, size_t *outlen);

#endif
