/* The /dev/fuse channel through libfuse's custom I/O hooks (fs/daemon/fuse_io.c). */
#ifndef MEDVAULT_FUSE_IO_H
#define MEDVAULT_FUSE_IO_H

struct fuse_session;

/* after fuse_session_mount(): read and write the session's fd ourselves */
int fuse_io_install(struct fuse_session *se);
/* 1 once INIT negotiated FUSE_HANDLE_KILLPRIV_V2 */
int fuse_io_killpriv_v2(void);
/* 1 while handling a WRITE that carries FUSE_WRITE_KILL_SUIDGID */
int fuse_io_write_kills_suidgid(void);

#endif
