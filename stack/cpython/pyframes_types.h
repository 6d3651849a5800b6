/*
 * pyframes.h's types for user space (the BPF side gets __u* from vmlinux.h).
 */
#pragma once

#include <linux/types.h>

#include "pyframes.h"
