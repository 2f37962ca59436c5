/*
 * audit_int.h: what the trail's format (audit_record.c) shares with its
 * reader (audit_read.c) and nobody else: the associated data a record frame
 * is sealed with, and one step of the hash chain.
 */
#ifndef MEDVAULT_AUDIT_INT_H
#define MEDVAULT_AUDIT_INT_H

#include <stddef.h>
#include <stdint.h>

/* the associated data of a frame: magic, volume, kind, sequence, chain head */
void audit_frame_ad(uint8_t ad[65], const uint8_t uuid[16], uint8_t kind, uint64_t seq,
		    const uint8_t prev[32]);
/* prev becomes the chain head after frame (its n bytes as written) */
void audit_chain_step(uint8_t prev[32], const uint8_t *frame, size_t n);

#endif
