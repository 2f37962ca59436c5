/* fs_ops: the libfuse low-level callbacks: one core call per request (daemon.c installs them). */
#ifndef MEDVAULT_FS_OPS_H
#define MEDVAULT_FS_OPS_H

struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops mv_fuse_ops;

#endif
