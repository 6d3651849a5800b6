/*
 * The signal sampler's wire: what the in-target agent (agent.c) and stoke's
 * reader (reader.c) share. Nothing else includes it.
 *
 * stoke launches the command with the agent in LD_PRELOAD and one end of a
 * SOCK_SEQPACKET socket pair at the fd number in STOKE_AGENT_FD. Every
 * process the agent starts in (the command, each forked child, each exec'd
 * image) creates its own ring: a sealed memfd (it can neither shrink nor
 * grow, so stoke can map it without risking SIGBUS), laid out as below, and
 * sends it with a HELLO message. stoke learns the sender's pid from the
 * kernel (SO_PASSCRED), never from the agent.
 *
 * The ring is a bounded multi-producer, single-consumer queue of fixed-size
 * cells (Vyukov's scheme): a producer claims cell `pos` by compare-and-swap
 * on head when the cell's sequence number equals pos, writes it, and
 * publishes it by storing pos + 1 into the sequence; stoke reads cells whose
 * sequence is tail + 1 and frees them by storing tail + nslots. Claiming
 * never waits, so the signal handler never blocks; a full ring counts the
 * sample as lost. A cell is only written up to its payload, so the
 * memfd's pages beyond the typical stack copy are never touched.
 *
 * Everything in the ring and in the messages comes from the target and is
 * untrusted by the reader: it copies each cell out before checking it.
 */
#pragma once

#include <stdint.h>

#define STOKE_AGENT_MAGIC 0x53544f4b45524e47ULL /* "STOKERNG" */
#define STOKE_AGENT_VERSION 1

/* Environment: the socket's "FD:INODE" (the agent checks that the fd is
 * still that socket before every write), and the configuration
 * "FREQ,CLOCK,STACK,SLOTS,SIGNO" (CLOCK: 0 = thread CPU time, 1 = wall). */
#define STOKE_AGENT_ENV_FD "STOKE_AGENT_FD"
#define STOKE_AGENT_ENV_CONF "STOKE_AGENT_CONF"

#define STOKE_AGENT_CLOCK_CPU 0
#define STOKE_AGENT_CLOCK_WALL 1

/* x86-64 user registers in perf's PERF_REG_X86_* order with the segment
 * registers DS..GS left out (sample_regs_user 0xff0fff): AX BX CX DX SI DI
 * BP SP IP FLAGS CS SS R8..R15. It is the layout the unwinder reads. */
#define STOKE_AGENT_NREGS 20

#define STOKE_AGENT_HDR_SIZE 4096

struct stoke_agent_ring_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t nslots;
	uint32_t slot_size;
	uint32_t pad;
	uint64_t head; /* next cell to claim (producers, atomic) */
	uint64_t tail; /* stoke's read position, a hint for the wake-up */
	uint64_t lost; /* samples dropped on a full ring (atomic) */
};

enum stoke_agent_event {
	STOKE_AGENT_EV_SAMPLE = 1,
	STOKE_AGENT_EV_MAP,  /* payload: struct stoke_agent_map */
	STOKE_AGENT_EV_COMM, /* payload: struct stoke_agent_comm */
};

struct stoke_agent_cell {
	uint64_t seq;
	uint32_t type;
	uint32_t size; /* payload bytes that follow */
};

struct stoke_agent_sample {
	uint64_t time; /* CLOCK_MONOTONIC, ns */
	uint64_t period; /* ns of the clock between samples */
	uint32_t tid;
	uint32_t cpu;
	uint64_t regs[STOKE_AGENT_NREGS];
	uint32_t stack_len; /* bytes copied from regs[SP] upwards, which follow */
	/* Periods beyond one this sample stands for. CPU-time timers fire on
	 * the scheduler tick (CONFIG_HZ), so above HZ one signal stands for
	 * several periods (si_overrun): stoke counts the sample 1 + overrun
	 * times, as perf's cpu-clock would have sampled each period. */
	uint32_t overrun;
};

/* One /proc/self/maps line of an executable mapping, NUL-terminated. */
struct stoke_agent_map {
	uint32_t tid;
	uint32_t len; /* of line, without the NUL */
	char line[];
};

struct stoke_agent_comm {
	uint32_t tid;
	uint32_t pad;
	char comm[16];
};

/* Messages on the socket. */
#define STOKE_AGENT_MSG_HELLO 1
#define STOKE_AGENT_MSG_WAKE 2

struct stoke_agent_hello {
	uint32_t type; /* STOKE_AGENT_MSG_HELLO; the ring's memfd rides along */
	uint32_t version;
	uint32_t ppid;
	uint32_t pad;
	char comm[16];
};

/* The cell size for a stack copy of stack bytes. */
static inline uint32_t stoke_agent_slot_size(uint32_t stack)
{
	uint32_t n = (uint32_t)(sizeof(struct stoke_agent_cell) +
				sizeof(struct stoke_agent_sample)) + stack;

	return (n + 63) & ~63u;
}

static inline uint64_t stoke_agent_ring_size(uint32_t stack, uint32_t nslots)
{
	return STOKE_AGENT_HDR_SIZE + (uint64_t)nslots * stoke_agent_slot_size(stack);
}
