/*
 * fuzz_header - the index path of one untrusted file, exactly as a
 * --parse-worker runs it: scan.c's parse_one() (dcmwalk_header, widening
 * reads, dcmshim_parse_header, attribute decoding, record building, the
 * DICOM JSON size), then what the mount derives from that record: the
 * pixel description and the .npy / .png generators (native and RLE), and
 * the JSON again with an instance name, whose length must be the one
 * announced in st_size (json_size + nbulk * name bytes).
 *
 * The file is served from a memfd through /proc/self/fd/N, read through a
 * local source of "/" (source.h; openat ignores the folder for an absolute
 * path).
 */

#include "../../index/scan.c"
#include <sys/mman.h>
#include "fuzz_px.h"

static int mfd = -1;
static char mpath[64];
static struct source root;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char msg[128];
	dcmshim_init();
	if (source_create("/", NULL, &root, msg, sizeof(msg)))
		abort();
	mfd = memfd_create("fuzz_header", MFD_CLOEXEC);
	if (mfd < 0)
		abort();
	snprintf(mpath, sizeof(mpath), "/proc/self/fd/%d", mfd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct pbuf b;
	static struct rec_buf rec;
	struct index ix;
	struct source_entry c;
	struct rec_head h;

	if (mfd < 0)
		LLVMFuzzerInitialize(NULL, NULL);
	if (ftruncate(mfd, 0) || (n && pwrite(mfd, d, n, 0) != (ssize_t)n))
		abort();
	memset(&ix, 0, sizeof(ix));
	ix.archive_fd = AT_FDCWD;
	ix.src = root;
	memset(&c, 0, sizeof(c));
	c.rel = mpath;
	c.rel_len = strlen(mpath);
	c.st.st_size = (off_t)n;
	c.st.st_mode = S_IFREG | 0644;
	parse_one(&ix, &c, 42, &b, &rec);
	if (!rec.len || rec_head_get(rec.data, rec.len, &h))
		abort();  /* parse_one always leaves a valid record */
	/* every attribute readable */
	size_t pos = 0;
	uint32_t tag;
	char vr[2];
	const char *v;
	size_t l;
	unsigned sum = 0;
	while (rec_next(rec.data, rec.len, &pos, &tag, vr, &v, &l))
		for (size_t i = 0; i < l; i++)
			sum += (unsigned char)v[i];
	(void)sum;
	if (h.status != REC_OK)
		return 0;

	struct px_info pi;
	const char *why;
	if (px_info_from_record(rec.data, rec.len, &h, &pi, &why) == 0)
		fz_pixels(&pi, d, n, rec.data, rec.len);

	/* the JSON at mount time: same bytes, with a name */
	if (h.json_size) {
		struct dcmwalk_result w;
		struct dcmjson_out jo = { 0 };
		static const char name[] = "0001 ~ab%.dcm";
		if (dcmwalk_header(d, n, n, &w) == 0) {
			int fd = open(mpath, O_RDONLY | O_CLOEXEC);
			int rc = dcmjson_build(d, n, n, &w, fd, name, sizeof(name) - 1, &jo);
			if (fd >= 0)
				close(fd);
			if (rc == 0 && jo.len != h.json_size + jo.nbulk *
			    dcmjson_name_bytes(name, sizeof(name) - 1)) {
				fprintf(stderr, "JSON length %zu != announced %llu + %llu * name\n",
					jo.len, (unsigned long long)h.json_size,
					(unsigned long long)jo.nbulk);
				abort();
			}
		}
		dcmjson_release(&jo);
	}
	return 0;
}
