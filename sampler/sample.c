/*
 * Record types shared by every sampler (sample.h): their names.
 */
#include "sampler/sample.h"

const char *stoke_record_type_name(enum stoke_record_type type)
{
	switch (type) {
	case STOKE_REC_SAMPLE:
		return "sample";
	case STOKE_REC_MMAP:
		return "mmap";
	case STOKE_REC_COMM:
		return "comm";
	case STOKE_REC_FORK:
		return "fork";
	case STOKE_REC_EXIT:
		return "exit";
	case STOKE_REC_LOST:
		return "lost";
	case STOKE_REC_THROTTLE:
		return "throttle";
	case STOKE_REC_UNTHROTTLE:
		return "unthrottle";
	case STOKE_REC_OTHER:
		return "other";
	case STOKE_REC_SPAN:
		return "span";
	}
	return "unknown";
}
