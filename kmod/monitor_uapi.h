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
 * Versions: ABI 1 had no CM_IOC_VERSION (ENOTTY) and no register flags.  ABI 2
 * adds CM_IOC_VERSION, the soft-limit signal (CM_REGISTER_SOFT_SIGNAL) and the
 * CM_EVENT_SOFT_SIGNAL event; every struct keeps its size and layout, so a
 * supervisor written for ABI 1 (flags 0, unknown event types skipped) works
 * unchanged.  Every ioctl refuses a non-zero reserved field or an unknown flag
 * with EINVAL, so a later ABI can give them a meaning safely.
 *
 * Soft-limit signal: with CM_REGISTER_SOFT_SIGNAL set in cm_register.flags and
 * a signal number in bits 8-15 (CM_REGISTER_SIGNAL(sig)), the monitor sends
 * that signal to the registered pid when RSS crosses the soft limit (for a
 * container init, the init forwards it to the command's process group), once
 * per crossing: it is re-armed only after RSS has fallen below 90 % of the
 * soft limit (CM_SOFT_REARM_PERCENT), so an application hovering at its limit
 * is not signalled again and again.  SIGKILL and SIGSTOP are refused: the hard
 * limit is the kill.  The dmesg line and CM_EVENT_SOFT_LIMIT stay as they are.
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
#define CM_FLAG_SOFT_SIGNALLED	(1U << 3) /* soft signal sent, not re-armed yet */

/* ABI version (CM_IOC_VERSION); see "Versions" above. */
#define CM_ABI_VERSION		2
#define CM_FEATURE_SOFT_SIGNAL	(1U << 0)

/* cm_register.flags */
#define CM_REGISTER_SOFT_SIGNAL	(1U << 0) /* send the signal in bits 8-15 at soft */
#define CM_REGISTER_SIGNAL_SHIFT	8
#define CM_REGISTER_SIGNAL_MASK	(0xffU << CM_REGISTER_SIGNAL_SHIFT)
#define CM_REGISTER_SIGNAL(sig)	(((__u32)(sig) << CM_REGISTER_SIGNAL_SHIFT) & CM_REGISTER_SIGNAL_MASK)
#define CM_SOFT_REARM_PERCENT	90	/* signal re-armed below this % of soft */

/* CM_IOC_REGISTER: start monitoring a container. */
struct cm_register {
	__s32 pid;			/* container init, caller's pid ns */
	__u32 flags;			/* CM_REGISTER_*; other bits must be 0 */
	__u64 soft_bytes;		/* warn above; 0 = no soft limit */
	__u64 hard_bytes;		/* SIGKILL above; must be > 0 */
	char name[CM_NAME_LEN];		/* NUL-terminated, printable */
};

/* CM_IOC_UNREGISTER: stop monitoring; no event is emitted. */
struct cm_unregister {
	__s32 pid;
	__u32 reserved;			/* must be 0 */
};

/* CM_IOC_QUERY: in: pid, with flags and reserved 0 (EINVAL otherwise); out: all. */
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

/* CM_IOC_VERSION (ABI 2): what this module speaks.  Out only. */
struct cm_version {
	__u32 abi;			/* CM_ABI_VERSION */
	__u32 features;			/* CM_FEATURE_* */
};

/* Event types, read() from the device as struct cm_event records. */
#define CM_EVENT_SOFT_LIMIT	1	/* RSS crossed soft (once per crossing) */
#define CM_EVENT_HARD_KILL	2	/* RSS crossed hard; container SIGKILLed */
#define CM_EVENT_GONE		3	/* container init exited; entry dropped */
#define CM_EVENT_SOFT_SIGNAL	4	/* soft signal sent (ABI 2); limit = soft */

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
#define CM_IOC_VERSION		_IOR(CM_IOC_MAGIC, 5, struct cm_version)

#endif /* _UAPI_CONTAINER_MONITOR_H */
