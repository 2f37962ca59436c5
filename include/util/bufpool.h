/*
 * bufpool: recycled chunk-sized buffers for plaintext and ciphertext.
 * Reusing them avoids a page-fault storm per chunk, and they are locked
 * in RAM (best effort) so plaintext does not reach swap.
 */
#ifndef MEDVAULT_BUFPOOL_H
#define MEDVAULT_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

struct bufpool;

/* size: bytes per buffer; keep: how many idle buffers to hold on to */
int bufpool_create(struct bufpool **out, size_t size, unsigned keep);
void bufpool_destroy(struct bufpool *bp);
/* NULL when out of memory; contents are garbage */
uint8_t *bufpool_get(struct bufpool *bp);
void bufpool_put(struct bufpool *bp, uint8_t *buf);

#endif
