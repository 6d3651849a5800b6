/*
 * stoked's pprof scrape endpoint (`stoked --http ADDR:PORT`, off by
 * default): what Parca, Pyroscope/Alloy and `go tool pprof` fetch from a Go
 * program, served from stoked (docs/fleet.md; threat model in
 * docs/security.md).
 *
 *   GET /debug/pprof/profile?seconds=N&pid=PID   a gzipped pprof of N s
 *   GET /debug/pprof/profile?seconds=N&comm=NAME  every process named NAME
 *   GET /debug/pprof/profile?session=ID           a continuous session's
 *                                                 latest rotation
 *   GET /debug/pprof/                             an index of the sessions
 *   GET /metrics                                  Prometheus text
 *
 * libmicrohttpd runs on threads of its own (one per connection, at most
 * --http-max-connections), never on stoked's event loop: a scrape runs its
 * own short session in its connection's thread, and a slow or stalled
 * scraper only holds that thread. What the endpoint knows of the loop's
 * sessions is a copy the loop publishes on every tick
 * (stoked_http_publish), and the continuous sessions' latest rotations are
 * handed over by their worker threads (stoked_http_rotation), each under
 * the endpoint's own lock: no lock of the loop is ever taken by a scrape.
 *
 * Who may scrape: loopback peers, and peers in an --http-allow CIDR, which
 * must then send the --http-token-file bearer token (loopback too once a
 * token is configured). What may be profiled: only processes matched by
 * root's --http-targets list (uids, user names, comms); never anything the
 * scraper names beyond choosing among those.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "formats/output.h"
#include "formats/profile.h"

struct daemon;

/* Parse one --http* option (opt is the option's long name without the
 * dashes). Returns 0, or -EINVAL with a reason printed. */
int stoked_http_option(const char *opt, const char *arg);
/* Whether --http was given. */
bool stoked_http_enabled(void);
/* Check the configuration (token file, allow list) and start listening.
 * Returns 0 or -errno (logged). */
int stoked_http_start(void);
/* Stop listening; scrapes in flight end early (their profiles so far are
 * still sent) and are waited for. */
void stoked_http_stop(void);

/* The loop thread, every tick: the sessions as /debug/pprof/ and /metrics
 * show them. */
void stoked_http_publish(struct daemon *d);
/* A continuous session's worker, after a rotation: keep this profile as
 * the session's latest for ?session=ID (encoded and labelled now, on the
 * worker). */
void stoked_http_rotation(uint64_t id, pid_t pid, const char *comm,
			  const struct stoke_profile *p, const struct stoke_run_info *info);
