/*
 * The signal and bpf samplers as backends (sampler/backend.h): their own
 * typed functions, put behind the one interface.
 */
#include "sampler/backend.h"

#include <errno.h>

#include "sampler/bpf/bpf_sampler.h"
#include "sampler/signal/signal_sampler.h"

/* ---- signal/ ---- */

static int sig_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb, void *userdata,
		   void **ret)
{
	return stoke_signal_new(opts, cb, userdata, (struct stoke_signal_sampler **)ret);
}

static int sig_launch(void *b, char *const argv[], pid_t *ret_pid)
{
	return stoke_signal_launch(b, argv, ret_pid);
}

static int sig_pollfds(const void *b, const int **ret)
{
	return stoke_signal_pollfds(b, ret);
}

static int sig_drain(void *b, bool flush)
{
	return stoke_signal_drain(b, flush);
}

static void sig_disable(void *b)
{
	stoke_signal_disable(b);
}

static void sig_get_stats(const void *b, struct stoke_sampler_stats *ret)
{
	stoke_signal_get_stats(b, ret);
}

static void sig_free(void *b)
{
	stoke_signal_free(b);
}

/* No attach: an agent cannot be put into a running process. */
const struct stoke_backend_ops stoke_signal_backend = {
	.kind = STOKE_BACKEND_SIGNAL,
	.name = "signal",
	.new = sig_new,
	.launch = sig_launch,
	.pollfds = sig_pollfds,
	.drain = sig_drain,
	.disable = sig_disable,
	.get_stats = sig_get_stats,
	.free = sig_free,
};

/* ---- bpf/ ---- */

static int bpf_new(const struct stoke_sampler_opts *opts, stoke_sampler_cb cb, void *userdata,
		   void **ret)
{
	return stoke_bpf_new(opts, cb, userdata, (struct stoke_bpf_sampler **)ret);
}

static int bpf_attach(void *b, pid_t pid)
{
	return stoke_bpf_attach(b, pid);
}

static int bpf_pollfds(const void *b, const int **ret)
{
	return stoke_bpf_pollfds(b, ret);
}

static int bpf_drain(void *b, bool flush)
{
	return stoke_bpf_drain(b, flush);
}

static void bpf_disable(void *b)
{
	stoke_bpf_disable(b);
}

static void bpf_get_stats(const void *b, struct stoke_sampler_stats *ret)
{
	stoke_bpf_get_stats(b, ret);
}

static void bpf_free(void *b)
{
	stoke_bpf_free(b);
}

/* No launch: system-wide or by PID only, for now. */
const struct stoke_backend_ops stoke_bpf_backend = {
	.kind = STOKE_BACKEND_BPF,
	.name = "bpf",
	.new = bpf_new,
	.attach = bpf_attach,
	.pollfds = bpf_pollfds,
	.drain = bpf_drain,
	.disable = bpf_disable,
	.get_stats = bpf_get_stats,
	.free = bpf_free,
};
