/*
 * index_check: is STORE/index/data.mdb safe to hand to LMDB?
 *
 * LMDB trusts its file's page structure: a page pointer out of the map, a
 * node offset past its page, a freelist naming a page in use, or a wrong
 * page number in a page header makes it read or write out of bounds,
 * loop forever, or hand the same page out twice (and abort on its own
 * asserts later).  Anyone who can write the store (or restores a backup)
 * can plant such a file, and the processes that open it run as root.
 *
 * index_check_structure() answers before any process of ours opens the
 * environment: a child process, confined (no new privileges, bounded
 * address space, CPU time and no core, every other descriptor closed,
 * nobody's uid/gid when run as root), checks every page of the file with
 * our own code (index_check_image), then has LMDB itself walk every key
 * and value of every database.  The parent only waits: a crash, a
 * non-zero exit or a hang of the child is a damaged index.
 */
#ifndef MEDVAULT_INDEX_CHECK_H
#define MEDVAULT_INDEX_CHECK_H

#include <stddef.h>
#include <stdint.h>

/* index_check_structure_flags flags */
/*
 * A daemon may be writing the environment (medvault info or snapshot of a
 * mounted store): read through LMDB's reader table (one slot in lock.mdb,
 * as any reader) and check the snapshot that read transaction sees.
 * Without it the environment is opened MDB_NOLOCK: the caller must hold
 * STORE/medvault.lock so that no writer exists, and nothing at all is
 * written (lock.mdb is neither created nor touched).
 */
#define INDEX_CHECK_LIVE 1

/*
 * Check the LMDB environment in index_dir (its data.mdb) without trusting
 * it in this process.  timeout_ms 0: a default that grows with the file
 * (20 s + 1 s per 32 MiB).  Returns 0 when sound; -EBADMSG when damaged
 * (the child found damage, died of a signal or exited non-zero), why[]
 * naming the file and what was wrong in one line; -ETIMEDOUT when the
 * check did not finish in time (the child is killed); -ENOENT when there
 * is no data.mdb; another -errno when the check itself could not run
 * (fork, pipe, memory).  Nothing of the environment is ever written.
 */
int index_check_structure(const char *index_dir, unsigned timeout_ms, char *why, size_t whylen);
int index_check_structure_flags(const char *index_dir, int flags, unsigned timeout_ms,
				char *why, size_t whylen);

/*
 * Check a whole data.mdb image in memory, page by page, with no LMDB code:
 * both meta pages; then from the newest one (or, want_txnid != 0, the one
 * that committed want_txnid) every page of the free, main and named
 * databases: in bounds, reached once, of the right kind and level, header
 * page number right, nodes inside their page and packed, keys ordered
 * within and across pages, overflow runs exact, freelist lists sorted and
 * disjoint from every page in use, and the counts of every database
 * record (pages, entries, depth) equal to what was walked.  Returns 0, or
 * -EBADMSG with why[] saying what (no file name).  Safe on any bytes.
 */
int index_check_image(const uint8_t *img, size_t len, uint64_t want_txnid,
		      char *why, size_t whylen);

/*
 * For tests only: a function the child runs at two points, to prove the
 * confinement and the parent's mapping of a crash, an exit status or a
 * hang: stage 0 once confined, before it opens anything; stage 1 after
 * it dropped its privileges, before it reads a page.  NULL (the
 * default): none.
 */
#define INDEX_CHECK_HOOK_CONFINED 0
#define INDEX_CHECK_HOOK_DROPPED 1
void index_check_set_test_hook(void (*fn)(int stage));

#endif
