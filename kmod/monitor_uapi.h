/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * container_monitor: userspace ABI of /dev/container_monitor.
 *
 * This header is the single source of truth for the ABI; src/monitor/abi.rs
 * mirrors it and tests/monitor_abi.rs compiles a C program against this file
 * to check that the mirror has not drifted.
 *
 * Rules: fixed-width types only, explicit padding (every reserved field must
 * be zero on input and is zero on output), no pointers, sizes are multiples
 * of 8 so the layout is the same on 32- and 64-bit userspace.
 *
 * Pids are numbers in the caller's PID namespace (the supervisor runs in the
 * host namespace, so "host pid").  The registered pid should be the init
 * (PID 1) of the container's own PID namespace: the container is then every
 * process of that namespace.  Any other process is monitored on its own.
 */
#ifndef _UAPI_CONTAINER_MONITOR_H
#define _UAPI_CONTAINER_MONITOR_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define CM_DEVICE_NAME		"container_monitor"
#define CM_NAME_LEN		64	/* including the terminating NUL */

/* Entry flags reported by CM_IOC_QUERY. */
#define CM_FLAG_SOFT_EXCEEDED	(1U << 0) /* above soft now; warned once */
#define CM_FLAG_HARD_KILLED	(1U << 1) /* SIGKILL sent for the hard limit */
#define CM_FLAG_PIDNS		(1U << 2) /* pid is a PID namespace init */

/* CM_IOC_REGISTER: start monitoring a container. */
struct cm_register {
	__s32 pid;			/* container init, caller's pid ns */
	__u32 flags;			/* reserved, must be 0 */
	__u64 soft_bytes;		/* warn above; 0 = no soft limit */
	__u64 hard_bytes;		/* SIGKILL above; must be > 0 */
	char name[CM_NAME_LEN];		/* NUL-terminated, printable */
};

/* CM_IOC_UNREGISTER: stop monitoring; no event is emitted. */
struct cm_unregister {
	__s32 pid;
	__u32 reserved;			/* must be 0 */
};

/* CM_IOC_QUERY: in: pid; out: everything else. */
struct cm_query {
	__s32 pid;			/* in */
	__u32 flags;			/* out: CM_FLAG_* */
	__u64 rss_bytes;		/* RSS summed over the container, last check */
	__u64 peak_rss_bytes;		/* highest rss_bytes seen */
	__u64 soft_bytes;
	__u64 hard_bytes;
	__u32 nr_procs;			/* processes counted at the last check */
	__u32 reserved;
	__u64 next_check_ms;		/* delay until the next check (adaptive) */
	char name[CM_NAME_LEN];
};

/* CM_IOC_STATS: cost of the periodic check, for benchmarks. */
struct cm_stats {
	__u32 nr_entries;
	__u32 reserved;
	__u64 runs;			/* executions of the periodic work */
	__u64 checks;			/* entries checked, all runs */
	__u64 total_ns;			/* time spent in the work, all runs */
	__u64 max_run_ns;		/* longest single run */
	__u64 events_dropped;		/* events lost to full reader queues */
};

/* Event types, read() from the device as struct cm_event records. */
#define CM_EVENT_SOFT_LIMIT	1	/* RSS crossed soft (once per crossing) */
#define CM_EVENT_HARD_KILL	2	/* RSS crossed hard; container SIGKILLed */
#define CM_EVENT_GONE		3	/* container init exited; entry dropped */

struct cm_event {
	__u32 type;			/* CM_EVENT_* */
	__s32 pid;			/* as registered */
	__u64 rss_bytes;		/* RSS when the event fired */
	__u64 limit_bytes;		/* soft or hard limit crossed; 0 for GONE */
	__u64 timestamp_ns;		/* CLOCK_MONOTONIC */
	char name[CM_NAME_LEN];
};

#define CM_IOC_MAGIC		0xCE

#define CM_IOC_REGISTER		_IOW(CM_IOC_MAGIC, 1, struct cm_register)
#define CM_IOC_UNREGISTER	_IOW(CM_IOC_MAGIC, 2, struct cm_unregister)
#define CM_IOC_QUERY		_IOWR(CM_IOC_MAGIC, 3, struct cm_query)
#define CM_IOC_STATS		_IOR(CM_IOC_MAGIC, 4, struct cm_stats)

#endif /* _UAPI_CONTAINER_MONITOR_H */
