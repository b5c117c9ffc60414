/* lsw_crc32c — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of layerswap manifests.
 *
 * Chosen over a cryptographic hash because it runs at memory speed with the
 * SSE4.2 instruction and, above all, because CRCs combine: the CRC of A‖B
 * follows from crc(A), crc(B) and |B|.  Ranks that write disjoint pieces of a
 * shard each checksum their own bytes, and the shard's CRC is combined in
 * offset order, without anyone reading the file again.
 */
#ifndef LSW_CRC32C_H
#define LSW_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend `crc` (0 for an empty message) with n bytes. */
uint32_t lsw_crc32c(uint32_t crc, const void *buf, size_t n);
/* CRC of A‖B from crc_a = crc(A), crc_b = crc(B) and len_b = |B|. */
uint32_t lsw_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* FNV-1a, 64-bit: a fast non-cryptographic identity hash (plans, inputs). */
uint64_t lsw_fnv1a64(uint64_t h, const void *buf, size_t n);
#define LSW_FNV1A64_INIT 0xcbf29ce484222325ULL

#endif
