/*
 * The /dev/fuse channel, read and written through libfuse's custom I/O
 * hooks for the two things libfuse 3.14 does not carry:
 *
 *  - FUSE_HANDLE_KILLPRIV_V2 in the INIT reply.  Without it the kernel
 *    asks GETXATTR("security.capability") before every write(2) (a FUSE
 *    mount has no SB_NOSEC), one synchronous round trip per write; with
 *    it the kernel asks once per inode and leaves clearing set-user-ID
 *    and set-group-ID bits to us (fs_ops.c, setattr_kill).
 *  - FUSE_WRITE_KILL_SUIDGID on a WRITE: libfuse drops write_flags, so
 *    the flag is kept for the thread that handles the request (the one
 *    that read it, in libfuse's session loops).
 */
#include <errno.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fuse_io.h"

/* fs_ops.c reads the kernel's FATTR_KILL_SUIDGID under libfuse's name */
_Static_assert(FATTR_KILL_SUIDGID == FUSE_SET_ATTR_KILL_SUID, "SETATTR kill bit moved");

static uint64_t init_unique;	/* the INIT request, answered once */
static int kernel_has_v2;	/* the kernel offered FUSE_HANDLE_KILLPRIV_V2 */
static int killpriv_v2;		/* and we accepted it */
static __thread int write_kills_suidgid;

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);
	const struct fuse_in_header *h = buf;

	(void)userdata;
	write_kills_suidgid = 0;
	if (n < (ssize_t)sizeof(*h))
		return n;
	if (h->opcode == FUSE_WRITE && (size_t)n >= sizeof(*h) + sizeof(struct fuse_write_in)) {
		const struct fuse_write_in *w = (const void *)(h + 1);

		write_kills_suidgid = (w->write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
	} else if (h->opcode == FUSE_INIT && (size_t)n >= sizeof(*h) + 16) {
		const struct fuse_init_in *in = (const void *)(h + 1);

		init_unique = h->unique;
		kernel_has_v2 = (in->flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
	}
	return n;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct fuse_out_header *out = iov[0].iov_base;

	(void)userdata;
	if (init_unique && out->unique == init_unique && out->error == 0 && count >= 2 &&
	    iov[1].iov_len >= 16 && kernel_has_v2) {
		struct fuse_init_out *init = iov[1].iov_base;

		init->flags |= FUSE_HANDLE_KILLPRIV_V2;
		init_unique = 0;
		__atomic_store_n(&killpriv_v2, 1, __ATOMIC_RELEASE);
	}
	return writev(fd, iov, count);
}

int fuse_io_install(struct fuse_session *se)
{
	static const struct fuse_custom_io io = {
		.read = io_read,
		.writev = io_writev,
	};

	return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

int fuse_io_killpriv_v2(void)
{
	return __atomic_load_n(&killpriv_v2, __ATOMIC_ACQUIRE);
}

int fuse_io_write_kills_suidgid(void)
{
	return write_kills_suidgid;
}
