/* fs_ops: the libfuse low-level callbacks, a thin adapter over mvfs. */
#ifndef MEDVAULT_FS_OPS_H
#define MEDVAULT_FS_OPS_H

struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops mv_fuse_ops;

#endif
