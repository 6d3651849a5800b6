/*
 * The signal sampler, stoke's side: launches a command with the in-target
 * agent (libstoke-agent.so, see agent.c and wire.h), receives each target
 * process's ring over a socket, and drains the rings into the same decoded
 * records the perf_event sampler delivers (SAMPLE with user registers and a
 * stack copy, MMAP, COMM, FORK, EXIT, LOST), so the same unwinder and
 * symbolizer make the same profile of them.
 *
 * It samples user space only, launched commands only (an agent cannot be
 * put into a running process), and always takes DWARF-style samples
 * (registers and the top of the stack): the handler never unwinds.
 * stoke_sampler (sampler.h) dispatches to it when opts.backend selects it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sampler/sampler.h"

struct stoke_signal_sampler;

/* Returns 0 or -errno (-EINVAL for options it cannot honour). */
int stoke_signal_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb, void *userdata,
		     struct stoke_signal_sampler **ret);
/* Unmaps every ring and closes the socket. Accepts NULL. */
void stoke_signal_free(struct stoke_signal_sampler *s);

/*
 * Launch argv[0] (searched in PATH) with the agent preloaded. Returns 0 and
 * the child's pid, -ENOENT/-EACCES when the command cannot be executed (the
 * child is reaped), -ELIBACC when the agent library is not found (logged),
 * or another -errno. The caller reaps the child.
 */
int stoke_signal_launch(struct stoke_signal_sampler *s, char *const argv[], pid_t *ret_pid);

/* The socket the agents talk on: POLLIN when a process starts or a ring
 * fills up. Rings are drained on every call of drain too. */
int stoke_signal_pollfds(const struct stoke_signal_sampler *s, const int **ret);

/* Deliver everything the agents have published (flush: also the rings of
 * processes that ended). Returns the records delivered or the callback's
 * negative value. */
int stoke_signal_drain(struct stoke_signal_sampler *s, bool flush);

/* No more records after what is already published. */
void stoke_signal_disable(struct stoke_signal_sampler *s);

void stoke_signal_get_stats(const struct stoke_signal_sampler *s, struct stoke_sampler_stats *ret);

/* Where the agent library is: $STOKE_AGENT, next to the stoke executable,
 * in the build tree, or the installed path. Returns a static string or
 * NULL. */
const char *stoke_signal_agent_path(void);
