/*
 * privsep: the daemon split in two when root mounts (docs/DESIGN.md,
 * "Privilege separation").
 *
 * The server (the process that opens the store, serves FUSE and runs
 * every thread) drops to a service account with no capabilities once
 * the filesystem is mounted.  The root part, forked from it before
 * anything of the store is read, keeps what needs root: the PKCS#11
 * session (the trail's checkpoint MAC, the anchor's copy on the token,
 * whose files are root's), the anchor file in the root-owned KSDIR, and
 * the unmount.  It never holds a key of the volume nor reads the store:
 * it answers fixed-size requests over a socketpair and trusts nothing
 * in them it can check.
 *
 * Every function returns 0 or -errno; those with why write one line.
 */
#ifndef MEDVAULT_PRIVSEP_H
#define MEDVAULT_PRIVSEP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct key_opts;
struct privsep;

#define PRIVSEP_MAC_LEN 32

/* The service account: uid and gid of name, or -ENOENT (why says how
 * to create it). */
int privsep_account(const char *name, uid_t *uid, gid_t *gid, char *why, size_t whylen);

/*
 * Fork the root part, before the store is opened.  It keeps copies of
 * the key options, KSDIR and the mountpoint; close_fd (or -1) is a
 * descriptor of the caller it must not hold (the verdict pipe).
 * foreground: it keeps stderr and the session.  -errno (why set).
 */
int privsep_start(struct privsep **out, const char *ksdir, const struct key_opts *key,
		  const char *mountpoint, int foreground, int close_fd, char *why, size_t whylen);

/*
 * The volume, once vault_open has checked it.  With want_mac, the root
 * part opens the trail's MAC key on the token (keystore_mac_open with
 * create): -ENOTSUP when the key options name a passphrase, else its
 * errors; *fresh: the key was just made.
 */
int privsep_hello(struct privsep *p, const uint8_t uuid[16], int want_mac, int *fresh,
		  char *why, size_t whylen);

/* HMAC-SHA256 of msg (at most 512 bytes) by the token's key. */
int privsep_mac(struct privsep *p, const uint8_t *msg, size_t len, uint8_t out[PRIVSEP_MAC_LEN]);

/* An encoded anchor (ANCHOR_LEN bytes) to KSDIR and the token; arg is
 * the struct privsep (vault's anchor_put). */
int privsep_anchor_put(void *arg, const uint8_t *buf, size_t len);

/*
 * Mounted (and the control socket, if sock is not NULL, made): the root
 * part notes which mount and which socket are ours, to unmount and
 * remove exactly those when the server is gone.  Once only.
 */
int privsep_mounted(struct privsep *p, const char *sock);

/* Unmount now (lazily, as fusermount3 -uz): the server closed its FUSE
 * channel and cannot unmount itself.  Nothing if the mount is gone. */
int privsep_unmount(struct privsep *p);

/*
 * Drop to uid/gid for good: no supplementary groups, no way back, no
 * new privileges; -EPERM unless every thread's effective, permitted and
 * ambient capabilities are then empty.  RLIMIT_MEMLOCK is raised first
 * (mlock is best effort: a warning when it stays low).
 */
int privsep_drop(uid_t uid, gid_t gid, char *why, size_t whylen);

/*
 * Watch for the root part's death (a thread): the server then ends as
 * on SIGTERM, since nothing could unmount it or keep its trail sealed.
 */
int privsep_watch(struct privsep *p);

/* Hang up (the root part removes what privsep_mounted named and exits)
 * and reap it.  p may be NULL. */
void privsep_close(struct privsep *p);

/*
 * Give what root made under dirfd (a store, an audit directory), up to
 * depth levels down, to uid/gid: regular files and directories owned by
 * root, never through a link.  -errno of the first failure.
 */
int privsep_chown_tree(int dirfd, uid_t uid, gid_t gid, int depth);

/* Tests only: send len raw bytes to the root part as one request, as a
 * compromised server could, and read its answer's rc (-EPIPE: it hung
 * up, which it does on anything malformed). */
int privsep_test_raw(struct privsep *p, const void *buf, size_t len);

#endif
