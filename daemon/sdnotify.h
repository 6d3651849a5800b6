/*
 * systemd readiness (Type=notify): send a state string such as "READY=1"
 * to $NOTIFY_SOCKET. Uses libsystemd's sd_notify when stoke was built with
 * it, and otherwise the same datagram written by hand (the protocol is one
 * sendto on an AF_UNIX datagram socket). Does nothing outside systemd.
 */
#pragma once

void stoke_sd_notify(const char *state);
