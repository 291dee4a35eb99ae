/* SPDX-License-Identifier: MIT */
/*
 * CQE user_data layout, one encoder for the whole queue ring:
 * bit 63: member I/O (else a ublk command or an internal event)
 * bit 62: internal event (stop wake-up, poll timer)
 * bit 61 (with 62): a watched fd's poll (src/watch.c)
 * member:   bits 0..15 tag, 16..31 sub slot
 * ublk cmd: bits 0..15 tag, 16..23 command (UBLK_IO_*)
 * watch:    bit 0 direction (0 POLLIN, 1 POLLOUT), 16..31 slot, 32..47 generation
 */
#ifndef UC_UDATA_H
#define UC_UDATA_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#define UC_UDATA_MEMBER	(1ULL << 63)
#define UC_UDATA_EVENT	(1ULL << 62)
#define UC_UDATA_TIMER	(UC_UDATA_EVENT | 1)	/* the engine's poll timer */
#define UC_UDATA_KICK	(UC_UDATA_EVENT | 2)	/* another thread woke the queue */
#define UC_UDATA_TIMER_UPDATE	(UC_UDATA_EVENT | 3)	/* the poll timer moved earlier */
#define UC_UDATA_IGNORE	(UC_UDATA_EVENT | 4)	/* a CQE nobody waits for (a poll removal) */
#define UC_UDATA_WATCH	(UC_UDATA_EVENT | 1ULL << 61)

static inline uint64_t uc_udata_member(unsigned int tag, unsigned int sub)
{
	assert(!(tag >> 16) && !(sub >> 16));
	return UC_UDATA_MEMBER | (uint64_t)sub << 16 | tag;
}

static inline uint64_t uc_udata_cmd(unsigned int tag, unsigned int cmd)
{
	assert(!(tag >> 16) && !(cmd >> 8));
	return (uint64_t)cmd << 16 | tag;
}

static inline bool uc_udata_is_member(uint64_t u)
{
	return u & UC_UDATA_MEMBER;
}

static inline unsigned int uc_udata_tag(uint64_t u)
{
	return u & 0xffff;
}

static inline unsigned int uc_udata_sub(uint64_t u)
{
	return (u >> 16) & 0xffff;
}

static inline uint64_t uc_udata_watch(unsigned int slot, unsigned int gen, unsigned int dir)
{
	assert(!(slot >> 16) && !(gen >> 16) && dir <= 1);
	return UC_UDATA_WATCH | (uint64_t)gen << 32 | (uint64_t)slot << 16 | dir;
}

static inline bool uc_udata_is_watch(uint64_t u)
{
	return (u & UC_UDATA_WATCH) == UC_UDATA_WATCH && !(u & UC_UDATA_MEMBER);
}

static inline unsigned int uc_udata_cmd_op(uint64_t u)
{
	return (u >> 16) & 0xff;
}

#endif
