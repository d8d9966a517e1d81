/*
 * cm_test: exercises /dev/container_monitor from inside the test VM.
 * Built static against kmod/monitor_uapi.h. Every check prints one line,
 * "PASS name" or "FAIL name: why"; the exit status is 1 if any check failed.
 *
 *   cm_test errors              every invalid ioctl with its errno
 *   cm_test idle                a container under its limits is left alone
 *   cm_test soft                soft warning once per crossing, re-armed below
 *   cm_test shell               a shell whose child allocates is killed whole
 *   cm_test hog HARD_MIB MAX_DELAY_MS [memory_hog|allocator [RUNS]]
 *                               full-speed allocation (own allocator, or
 *                               /bin/memory_hog 1 0): detection delay
 *   cm_test many N              N containers at once; none stale after exit
 *   cm_test hold N              register N sleeping containers and leave them
 *   cm_test stats [N [CHECK]]   print the module's stats; check N entries
 *   cm_test idlecost N SECONDS  cost of checking N idle containers (bench)
 *   cm_test idlecost-sig N SECONDS [HARD_MIB]
 *                               the same, each registered with soft = hard/2
 *                               and a soft-limit signal (SIGTERM): the ABI 2
 *                               path; says whether it stays under 1 % of a CPU
 *   cm_test rsswatch CGROUP_DIR INTERVAL_MS MAX_MS
 *                               samples a cgroup's RSS (sum of VmRSS of its
 *                               processes) and memory.current every
 *                               INTERVAL_MS: "sample REALTIME_MS RSS_KIB
 *                               CURRENT_KIB NPROCS" lines, until it empties
 *   cm_test query PID           the module's entry for PID as one line
 *                               ("entry pid=.. name=.. soft=.. hard=.. flags=..")
 *                               and exit 0, or "none: ERRNO" and exit 1
 *   cm_test reap FILE CMD...    what a containerd shim or conmon is to an OCI
 *                               runtime: a child subreaper that runs CMD (e.g.
 *                               engine-oci create), writes "cmd exit N" to FILE
 *                               when it returns, then adopts what CMD left
 *                               running (the container's init) and appends
 *                               "pid P exit N" or "pid P signal S" for each,
 *                               until none is left
 *
 * A "container" here is what engine makes of one: a process that is PID 1 of
 * its own PID namespace, registered before it is allowed to run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "monitor_uapi.h"

#define DEV "/dev/container_monitor"
#define MIB (1024ULL * 1024)

static int failures;
static int dev = -1;

/* Events read from the device but not yet consumed by a check. */
static struct cm_event evbuf[4096];
static int nev;

static void result(int ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		printf("PASS %s\n", name);
	} else {
		failures++;
		printf("FAIL %s: ", name);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
	}
	fflush(stdout);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void msleep(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void open_dev(void)
{
	if (dev >= 0)
		return;
	dev = open(DEV, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (dev < 0) {
		printf("FAIL open_device: %s\n", strerror(errno));
		exit(1);
	}
}

/* ioctl returning 0 or -errno. */
static int xioctl(unsigned long cmd, void *arg)
{
	return ioctl(dev, cmd, arg) ? -errno : 0;
}

static int cm_register(pid_t pid, uint64_t soft, uint64_t hard, const char *name)
{
	struct cm_register r;

	memset(&r, 0, sizeof(r));
	r.pid = pid;
	r.soft_bytes = soft;
	r.hard_bytes = hard;
	snprintf(r.name, sizeof(r.name), "%s", name);
	return xioctl(CM_IOC_REGISTER, &r);
}

static int cm_query(pid_t pid, struct cm_query *q)
{
	memset(q, 0, sizeof(*q));
	q->pid = pid;
	return xioctl(CM_IOC_QUERY, q);
}

static int cm_unregister(pid_t pid)
{
	struct cm_unregister u = { .pid = pid };

	return xioctl(CM_IOC_UNREGISTER, &u);
}

static int cm_get_stats(struct cm_stats *s)
{
	memset(s, 0, sizeof(*s));
	return xioctl(CM_IOC_STATS, s);
}

/* Append every pending event to evbuf, waiting up to timeout_ms for one. */
static void read_events(int timeout_ms)
{
	struct pollfd pfd = { .fd = dev, .events = POLLIN };
	ssize_t n;

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return;
	while (nev < (int)(sizeof(evbuf) / sizeof(evbuf[0]))) {
		n = read(dev, &evbuf[nev],
			 (sizeof(evbuf) / sizeof(evbuf[0]) - nev) * sizeof(evbuf[0]));
		if (n <= 0)
			break;
		nev += n / sizeof(struct cm_event);
	}
}

static int count_events(uint32_t type, pid_t pid)
{
	int i, n = 0;

	for (i = 0; i < nev; i++)
		if (evbuf[i].type == type && (pid == 0 || evbuf[i].pid == pid))
			n++;
	return n;
}

/* Wait until an event of @type for @pid has been read; copy it to @out. */
static int wait_event(uint32_t type, pid_t pid, int timeout_ms, struct cm_event *out)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	int i;

	for (;;) {
		for (i = 0; i < nev; i++) {
			if (evbuf[i].type == type && evbuf[i].pid == pid) {
				if (out)
					*out = evbuf[i];
				return 1;
			}
		}
		if (now_ns() >= deadline)
			return 0;
		read_events((int)((deadline - now_ns()) / 1000000ULL) + 1);
	}
}

/*
 * A container: a child that is PID 1 of a new PID namespace. It blocks until
 * release() so the caller can register it first, like the engine does.
 */
struct ctr {
	pid_t pid;
	int go;		/* write end: release the child */
	int cmd;	/* write end: commands for the allocator */
	int ack;	/* read end: allocator acknowledgements */
};

enum ctr_kind { CTR_SLEEP, CTR_EXEC, CTR_ALLOC, CTR_HOG };

/* When >= 0, the next spawned container gets it as stdout. */
static int spawn_stdout = -1;
static void hog_child(void);

static volatile sig_atomic_t usr1_count;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

/* Allocator commands: 'g' grows by 20 MiB + touches, 's' frees it all, 'c' answers with the
 * number of SIGUSR1 received (the soft-limit signal) instead of echoing. */
static void allocator(int cmd, int ack)
{
	struct sigaction sa;
	char *maps[64];
	int nmaps = 0;
	char c;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	while (read(cmd, &c, 1) == 1) {
		if (c == 'c') {
			char n = (char)usr1_count;

			if (write(ack, &n, 1) != 1)
				_exit(3);
			continue;
		}
		if (c == 'g' && nmaps < 64) {
			size_t len = 20 * MIB;
			char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				_exit(3);
			memset(p, 1, len);
			maps[nmaps++] = p;
		} else if (c == 's') {
			while (nmaps)
				munmap(maps[--nmaps], 20 * MIB);
		}
		if (write(ack, &c, 1) != 1)
			_exit(3);
	}
	_exit(0);
}

static struct ctr spawn(enum ctr_kind kind, char *const argv[])
{
	int go[2], cmd[2] = { -1, -1 }, ack[2] = { -1, -1 };
	struct ctr c = { .pid = -1, .go = -1, .cmd = -1, .ack = -1 };
	char b;

	if (pipe2(go, O_CLOEXEC) ||
	    (kind == CTR_ALLOC && (pipe2(cmd, O_CLOEXEC) || pipe2(ack, O_CLOEXEC)))) {
		perror("pipe");
		exit(2);
	}
	c.pid = syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL);
	if (c.pid < 0) {
		perror("clone(CLONE_NEWPID)");
		exit(2);
	}
	if (c.pid == 0) {
		close(go[1]);
		if (dev >= 0)
			close(dev);
		if (read(go[0], &b, 1) != 1)
			_exit(4);	/* parent gave up */
		if (spawn_stdout >= 0 && dup2(spawn_stdout, 1) < 0)
			_exit(5);
		switch (kind) {
		case CTR_SLEEP:
			for (;;)
				pause();
		case CTR_EXEC:
			execv(argv[0], argv);
			_exit(127);
		case CTR_ALLOC:
			close(cmd[1]);
			close(ack[0]);
			allocator(cmd[0], ack[1]);
			break;
		case CTR_HOG:
			hog_child();
		}
		_exit(0);
	}
	close(go[0]);
	c.go = go[1];
	if (kind == CTR_ALLOC) {
		close(cmd[0]);
		close(ack[1]);
		c.cmd = cmd[1];
		c.ack = ack[0];
	}
	return c;
}

static void release(struct ctr *c)
{
	if (write(c->go, "g", 1) != 1)
		perror("release");
	close(c->go);
	c->go = -1;
}

static int alloc_cmd(struct ctr *c, char cmd)
{
	char b;

	return write(c->cmd, &cmd, 1) == 1 && read(c->ack, &b, 1) == 1 && b == cmd;
}

/* Kill and reap; returns the wait status. */
static int reap(struct ctr *c, int sig)
{
	int status = 0;

	if (sig)
		kill(c->pid, sig);
	if (c->go >= 0)
		close(c->go);
	if (c->cmd >= 0)
		close(c->cmd);
	if (c->ack >= 0)
		close(c->ack);
	waitpid(c->pid, &status, 0);
	return status;
}

static int killed_by_sigkill(int status)
{
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

/* ---- errors ------------------------------------------------------------ */

static void expect_errno(const char *name, int got, int want)
{
	result(got == -want, name, "got %s (%d), want %s", got ? strerror(-got) : "success",
	       got, strerror(want));
}

static void test_errors(void)
{
	struct cm_register r;
	struct cm_query q;
	struct cm_unregister u;
	struct cm_stats s;
	struct ctr c, z;
	pid_t gone;
	void *ro;
	int status, i, ok;

	open_dev();
	c = spawn(CTR_SLEEP, NULL);

	memset(&r, 0, sizeof(r));
	r.pid = c.pid;
	r.soft_bytes = 2 * MIB;
	r.hard_bytes = 1 * MIB;
	strcpy(r.name, "errtest");
	expect_errno("einval_soft_above_hard", xioctl(CM_IOC_REGISTER, &r), EINVAL);

	r.soft_bytes = 0;
	r.hard_bytes = 0;
	expect_errno("einval_hard_zero", xioctl(CM_IOC_REGISTER, &r), EINVAL);

	r.hard_bytes = 64 * MIB;
	memset(r.name, 'a', sizeof(r.name));
	expect_errno("einval_name_unterminated", xioctl(CM_IOC_REGISTER, &r), EINVAL);

	memset(r.name, 0, sizeof(r.name));
	expect_errno("einval_name_empty", xioctl(CM_IOC_REGISTER, &r), EINVAL);

	strcpy(r.name, "bad\001name");
	expect_errno("einval_name_unprintable", xioctl(CM_IOC_REGISTER, &r), EINVAL);

	strcpy(r.name, "errtest");
	r.flags = 1;
	expect_errno("einval_reserved_flags", xioctl(CM_IOC_REGISTER, &r), EINVAL);
	r.flags = 0;

	r.pid = 0;
	expect_errno("einval_pid_zero", xioctl(CM_IOC_REGISTER, &r), EINVAL);
	r.pid = 1;
	expect_errno("einval_global_init", xioctl(CM_IOC_REGISTER, &r), EINVAL);
	r.pid = 2;	/* kthreadd */
	expect_errno("einval_kernel_thread", xioctl(CM_IOC_REGISTER, &r), EINVAL);

	/* A reaped child's number names no process (until reused). */
	gone = fork();
	if (gone == 0)
		_exit(0);
	waitpid(gone, &status, 0);
	r.pid = gone;
	expect_errno("esrch_dead_pid", xioctl(CM_IOC_REGISTER, &r), ESRCH);

	/* A zombie is not alive either. */
	z.pid = fork();
	if (z.pid == 0)
		_exit(0);
	msleep(100);
	r.pid = z.pid;
	expect_errno("esrch_zombie", xioctl(CM_IOC_REGISTER, &r), ESRCH);
	waitpid(z.pid, &status, 0);

	r.pid = c.pid;
	expect_errno("register_ok", xioctl(CM_IOC_REGISTER, &r), 0);
	expect_errno("eexist_duplicate", xioctl(CM_IOC_REGISTER, &r), EEXIST);

	expect_errno("enoent_query_unknown", cm_query(gone, &q), ENOENT);
	expect_errno("enoent_unregister_unknown", cm_unregister(gone), ENOENT);
	u.pid = c.pid;
	u.reserved = 7;
	expect_errno("einval_unregister_reserved", xioctl(CM_IOC_UNREGISTER, &u), EINVAL);

	expect_errno("enotty_unknown_cmd", xioctl(_IO(CM_IOC_MAGIC, 99), NULL), ENOTTY);
	/* Same number, wrong size: a different command. */
	expect_errno("enotty_wrong_size",
		     xioctl(_IOW(CM_IOC_MAGIC, 1, uint32_t), &r), ENOTTY);

	expect_errno("efault_register_null", xioctl(CM_IOC_REGISTER, NULL), EFAULT);
	expect_errno("efault_register_bad_ptr", xioctl(CM_IOC_REGISTER, (void *)16), EFAULT);
	expect_errno("efault_unregister_null", xioctl(CM_IOC_UNREGISTER, NULL), EFAULT);
	expect_errno("efault_query_null", xioctl(CM_IOC_QUERY, NULL), EFAULT);
	expect_errno("efault_stats_null", xioctl(CM_IOC_STATS, NULL), EFAULT);
	/* Readable but not writable: copy_from_user works, copy_to_user must fail. */
	ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	((struct cm_query *)ro)->pid = c.pid;
	mprotect(ro, 4096, PROT_READ);
	expect_errno("efault_query_readonly", xioctl(CM_IOC_QUERY, ro), EFAULT);
	munmap(ro, 4096);

	/* Query output is fully defined: reserved fields zero, figures sane. */
	memset(&q, 0xff, sizeof(q));
	q.pid = c.pid;
	q.flags = 0;
	q.reserved = 0;
	ok = xioctl(CM_IOC_QUERY, &q) == 0 && q.reserved == 0 &&
	     q.soft_bytes == 0 && q.hard_bytes == 64 * MIB &&
	     (q.flags & CM_FLAG_PIDNS) && q.nr_procs == 1 &&
	     q.rss_bytes > 0 && q.rss_bytes < 8 * MIB && !strcmp(q.name, "errtest");
	for (i = strlen(q.name); ok && i < CM_NAME_LEN; i++)
		ok = q.name[i] == 0;
	result(ok, "query_zeroed_and_sane", "flags=%#x rss=%llu procs=%u reserved=%u name=%.64s",
	       q.flags, (unsigned long long)q.rss_bytes, q.nr_procs, q.reserved, q.name);
	expect_errno("stats_ok", cm_get_stats(&s), 0);

	/* ABI 2: reserved input fields of a query, unknown flags, the soft-signal encoding. */
	memset(&q, 0, sizeof(q));
	q.pid = c.pid;
	q.reserved = 1;
	expect_errno("einval_query_reserved", xioctl(CM_IOC_QUERY, &q), EINVAL);
	memset(&q, 0, sizeof(q));
	q.pid = c.pid;
	q.flags = CM_FLAG_SOFT_EXCEEDED;
	expect_errno("einval_query_flags", xioctl(CM_IOC_QUERY, &q), EINVAL);
	{
		struct cm_register x;
		struct cm_version v;

		memset(&x, 0, sizeof(x));
		x.pid = c.pid;
		x.soft_bytes = 16 * MIB;
		x.hard_bytes = 64 * MIB;
		strcpy(x.name, "flagtest");
		x.flags = 1U << 1;
		expect_errno("einval_register_unknown_flag", xioctl(CM_IOC_REGISTER, &x), EINVAL);
		x.flags = 1U << 31;
		expect_errno("einval_register_high_flag", xioctl(CM_IOC_REGISTER, &x), EINVAL);
		x.flags = CM_REGISTER_SIGNAL(SIGTERM);
		expect_errno("einval_signal_without_flag", xioctl(CM_IOC_REGISTER, &x), EINVAL);
		x.flags = CM_REGISTER_SOFT_SIGNAL | CM_REGISTER_SIGNAL(SIGKILL);
		expect_errno("einval_soft_signal_kill", xioctl(CM_IOC_REGISTER, &x), EINVAL);
		x.flags = CM_REGISTER_SOFT_SIGNAL | CM_REGISTER_SIGNAL(65);
		expect_errno("einval_soft_signal_invalid", xioctl(CM_IOC_REGISTER, &x), EINVAL);
		x.flags = CM_REGISTER_SOFT_SIGNAL | CM_REGISTER_SIGNAL(SIGTERM);
		x.soft_bytes = 0;
		expect_errno("einval_soft_signal_no_soft", xioctl(CM_IOC_REGISTER, &x), EINVAL);

		memset(&v, 0xff, sizeof(v));
		i = xioctl(CM_IOC_VERSION, &v);
		result(i == 0 && v.abi == CM_ABI_VERSION && (v.features & CM_FEATURE_SOFT_SIGNAL),
		       "version_abi2_soft_signal", "rc=%d abi=%u features=%#x", i, v.abi, v.features);
		expect_errno("efault_version_null", xioctl(CM_IOC_VERSION, NULL), EFAULT);
	}

	/* read(): whole records only; empty non-blocking queue is EAGAIN. */
	{
		char small[8];
		struct cm_event ev[4];

		while (read(dev, ev, sizeof(ev)) > 0)
			;
		errno = 0;
		result(read(dev, small, sizeof(small)) < 0 && errno == EINVAL,
		       "read_short_buffer_einval", "errno %d", errno);
		errno = 0;
		result(read(dev, ev, sizeof(ev)) < 0 && errno == EAGAIN,
		       "read_empty_eagain", "errno %d", errno);
	}

	/* A caller without CAP_SYS_ADMIN: EPERM on an inherited fd, EACCES on open. */
	gone = fork();
	if (gone == 0) {
		int rc = 0;

		if (setgid(65534) || setuid(65534))
			_exit(10);
		memset(&q, 0, sizeof(q));
		q.pid = c.pid;
		if (ioctl(dev, CM_IOC_QUERY, &q) == 0 || errno != EPERM)
			rc |= 1;
		if (ioctl(dev, CM_IOC_REGISTER, &r) == 0 || errno != EPERM)
			rc |= 2;
		if (ioctl(dev, CM_IOC_UNREGISTER, &u) == 0 || errno != EPERM)
			rc |= 4;
		if (open(DEV, O_RDWR) >= 0 || errno != EACCES)
			rc |= 8;
		_exit(rc);
	}
	waitpid(gone, &status, 0);
	result(WIFEXITED(status) && WEXITSTATUS(status) == 0, "eperm_non_root",
	       "child status %#x (bits: 1 query, 2 register, 4 unregister, 8 open)", status);

	/* Limits near 2^64 must not overflow the interval arithmetic (x86 divq traps). */
	z = spawn(CTR_SLEEP, NULL);
	expect_errno("huge_limits_register", cm_register(z.pid, UINT64_MAX, UINT64_MAX, "huge"), 0);
	release(&z);
	msleep(50);
	i = cm_query(z.pid, &q);
	result(i == 0 && q.hard_bytes == UINT64_MAX && !(q.flags & CM_FLAG_SOFT_EXCEEDED),
	       "huge_limits_query", "rc=%d flags=%#x", i, q.flags);
	cm_unregister(z.pid);
	reap(&z, SIGKILL);

	expect_errno("unregister_ok", cm_unregister(c.pid), 0);
	expect_errno("enoent_after_unregister", cm_query(c.pid, &q), ENOENT);
	reap(&c, SIGKILL);
}

/* ---- behaviour --------------------------------------------------------- */

static void test_idle(void)
{
	char *argv[] = { "/bin/memory_hog", "1", "0", "4", NULL };
	struct cm_query q;
	struct ctr c;
	int status, i, rc;

	open_dev();
	c = spawn(CTR_EXEC, argv);
	if (cm_register(c.pid, 16 * MIB, 32 * MIB, "idletest")) {
		result(0, "idle_register", "%s", strerror(errno));
		reap(&c, SIGKILL);
		return;
	}
	release(&c);
	/* Many check periods: the container holds 4 MiB, far under 16/32. */
	for (i = 0; i < 20; i++)
		msleep(100);
	read_events(0);
	result(waitpid(c.pid, &status, WNOHANG) == 0, "idle_still_running", "it died (status %#x)", status);
	/* Arguments are evaluated in no set order: query before result(). */
	rc = cm_query(c.pid, &q);
	result(rc == 0 && q.rss_bytes >= 4 * MIB && q.rss_bytes < 16 * MIB &&
	       !(q.flags & (CM_FLAG_SOFT_EXCEEDED | CM_FLAG_HARD_KILLED)),
	       "idle_under_limits", "rss=%llu flags=%#x", (unsigned long long)q.rss_bytes, q.flags);
	result(count_events(0, c.pid) == 0, "idle_no_events", "%d events", count_events(0, c.pid));
	printf("idle: rss=%llu next_check_ms=%llu\n", (unsigned long long)q.rss_bytes,
	       (unsigned long long)q.next_check_ms);
	cm_unregister(c.pid);
	reap(&c, SIGKILL);
}

static void test_soft(void)
{
	struct cm_query q;
	struct cm_event ev;
	struct ctr c;
	int ok, status, rc;

	open_dev();
	c = spawn(CTR_ALLOC, NULL);
	if (cm_register(c.pid, 16 * MIB, 128 * MIB, "softtest")) {
		result(0, "soft_register", "%s", strerror(errno));
		reap(&c, SIGKILL);
		return;
	}
	release(&c);
	result(alloc_cmd(&c, 'g'), "soft_grow", "allocator did not answer");
	ok = wait_event(CM_EVENT_SOFT_LIMIT, c.pid, 3000, &ev);
	result(ok && ev.rss_bytes > 16 * MIB && ev.limit_bytes == 16 * MIB &&
	       !strcmp(ev.name, "softtest"), "soft_event", "ok=%d rss=%llu limit=%llu",
	       ok, (unsigned long long)ev.rss_bytes, (unsigned long long)ev.limit_bytes);
	rc = cm_query(c.pid, &q);
	result(rc == 0 && (q.flags & CM_FLAG_SOFT_EXCEEDED) &&
	       q.rss_bytes >= 19 * MIB && q.rss_bytes < 28 * MIB,
	       "query_rss_matches", "rc=%d rss=%llu flags=%#x", rc,
	       (unsigned long long)q.rss_bytes, q.flags);
	/* Still above soft for many checks: no second warning. */
	msleep(1500);
	read_events(0);
	result(count_events(CM_EVENT_SOFT_LIMIT, c.pid) == 1, "soft_once_per_crossing",
	       "%d soft events", count_events(CM_EVENT_SOFT_LIMIT, c.pid));
	/* Back under soft, then over again: a new crossing, a new warning. */
	ok = alloc_cmd(&c, 's');
	rc = cm_query(c.pid, &q);
	result(ok && rc == 0 && !(q.flags & CM_FLAG_SOFT_EXCEEDED), "soft_cleared_below",
	       "rss=%llu flags=%#x", (unsigned long long)q.rss_bytes, q.flags);
	alloc_cmd(&c, 'g');
	msleep(500);
	read_events(200);
	result(count_events(CM_EVENT_SOFT_LIMIT, c.pid) == 2, "soft_rearmed",
	       "%d soft events", count_events(CM_EVENT_SOFT_LIMIT, c.pid));
	result(waitpid(c.pid, &status, WNOHANG) == 0 &&
	       count_events(CM_EVENT_HARD_KILL, c.pid) == 0, "soft_does_not_kill", "killed");
	cm_unregister(c.pid);
	reap(&c, SIGKILL);
}

static int usr1_received(struct ctr *c)
{
	char b = 'c', n;

	if (write(c->cmd, &b, 1) != 1 || read(c->ack, &n, 1) != 1)
		return -1;
	return n;
}

/* The soft-limit signal: sent once per crossing, re-armed below 90 % of soft. */
static void test_softsig(void)
{
	struct cm_register r;
	struct cm_query q;
	struct cm_event ev;
	struct ctr c;
	int ok, n, rc, status;

	open_dev();
	c = spawn(CTR_ALLOC, NULL);
	memset(&r, 0, sizeof(r));
	r.pid = c.pid;
	r.soft_bytes = 16 * MIB;
	r.hard_bytes = 128 * MIB;
	r.flags = CM_REGISTER_SOFT_SIGNAL | CM_REGISTER_SIGNAL(SIGUSR1);
	strcpy(r.name, "sigtest");
	rc = xioctl(CM_IOC_REGISTER, &r);
	result(rc == 0, "softsig_register", "%s", strerror(-rc));
	if (rc) {
		reap(&c, SIGKILL);
		return;
	}
	release(&c);
	alloc_cmd(&c, 'g');
	ok = wait_event(CM_EVENT_SOFT_SIGNAL, c.pid, 3000, &ev);
	result(ok && ev.rss_bytes > 16 * MIB && ev.limit_bytes == 16 * MIB && !strcmp(ev.name, "sigtest"),
	       "softsig_event", "ok=%d rss=%llu limit=%llu", ok, (unsigned long long)ev.rss_bytes,
	       (unsigned long long)ev.limit_bytes);
	n = usr1_received(&c);
	result(n == 1, "softsig_delivered", "%d SIGUSR1 received", n);
	/* Still above soft, and growing: no second signal. */
	alloc_cmd(&c, 'g');
	msleep(500);
	read_events(0);
	rc = cm_query(c.pid, &q);
	n = usr1_received(&c);
	result(n == 1 && count_events(CM_EVENT_SOFT_SIGNAL, c.pid) == 1 && rc == 0 &&
	       (q.flags & CM_FLAG_SOFT_SIGNALLED), "softsig_once_per_crossing",
	       "%d received, %d events, flags=%#x", n, count_events(CM_EVENT_SOFT_SIGNAL, c.pid), q.flags);
	/* Well below 90 % of soft: re-armed; the next crossing signals again. */
	alloc_cmd(&c, 's');
	rc = cm_query(c.pid, &q);
	result(rc == 0 && !(q.flags & CM_FLAG_SOFT_SIGNALLED), "softsig_rearmed_below",
	       "rss=%llu flags=%#x", (unsigned long long)q.rss_bytes, q.flags);
	alloc_cmd(&c, 'g');
	for (n = 0; n < 30 && count_events(CM_EVENT_SOFT_SIGNAL, c.pid) < 2; n++)
		read_events(100);
	n = usr1_received(&c);
	result(n == 2 && count_events(CM_EVENT_SOFT_SIGNAL, c.pid) == 2, "softsig_second_crossing",
	       "%d received, %d events", n, count_events(CM_EVENT_SOFT_SIGNAL, c.pid));
	result(waitpid(c.pid, &status, WNOHANG) == 0 && count_events(CM_EVENT_HARD_KILL, c.pid) == 0,
	       "softsig_does_not_kill", "killed");
	cm_unregister(c.pid);
	reap(&c, SIGKILL);
}

static int proc_named(const char *comm)
{
	char path[300], buf[64];
	struct dirent *d;
	int n = 0, fd;
	ssize_t len;
	DIR *dir = opendir("/proc");

	while (dir && (d = readdir(dir))) {
		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", d->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len > 0) {
			buf[len] = 0;
			buf[strcspn(buf, "\n")] = 0;
			n += !strcmp(buf, comm);
		}
	}
	if (dir)
		closedir(dir);
	return n;
}

static void test_shell(void)
{
	/* The shell itself stays small; only its child allocates. */
	char *argv[] = { "/bin/sh", "-c", "/bin/memory_hog 1 20 & wait", NULL };
	struct cm_query q;
	struct cm_event ev;
	unsigned int max_procs = 0;
	struct ctr c;
	int ok, status, i;

	open_dev();
	c = spawn(CTR_EXEC, argv);
	if (cm_register(c.pid, 8 * MIB, 24 * MIB, "shelltest")) {
		result(0, "shell_register", "%s", strerror(errno));
		reap(&c, SIGKILL);
		return;
	}
	release(&c);
	for (i = 0; i < 100 && !count_events(CM_EVENT_HARD_KILL, c.pid); i++) {
		if (cm_query(c.pid, &q) == 0 && q.nr_procs > max_procs)
			max_procs = q.nr_procs;
		read_events(50);
	}
	result(max_procs >= 2, "shell_child_counted", "max procs %u", max_procs);
	ok = wait_event(CM_EVENT_HARD_KILL, c.pid, 10000, &ev);
	result(ok && ev.rss_bytes > 24 * MIB, "shell_hard_event", "ok=%d rss=%llu", ok,
	       (unsigned long long)ev.rss_bytes);
	status = reap(&c, 0);
	result(killed_by_sigkill(status), "shell_init_sigkilled", "status %#x", status);
	for (i = 0; i < 50 && proc_named("memory_hog"); i++)
		msleep(20);
	result(proc_named("memory_hog") == 0, "shell_child_killed", "memory_hog still alive");
	ok = wait_event(CM_EVENT_GONE, c.pid, 3000, NULL);
	result(ok, "shell_gone_event", "no GONE event");
}

/* Full-speed allocator for the hog test: 1 MiB steps, one line per step on
 * stdout, like memory_hog. Small pages, so RSS grows smoothly and the figures
 * measure the monitor rather than THP's 2 MiB fault granularity. */
static void hog_child(void)
{
	size_t len = 4096 * MIB, off;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char line[64];
	int n;

	if (p == MAP_FAILED)
		_exit(3);
	madvise(p, len, MADV_NOHUGEPAGE);
	for (off = 0; off < len; off += 4096) {
		p[off] = 1;
		if ((off + 4096) % MIB == 0) {
			n = snprintf(line, sizeof(line), "allocated=%zu MiB\n",
				     (size_t)((off + 4096) / MIB));
			if (write(1, line, n) != n)
				_exit(3);
		}
	}
	_exit(0);
}

/*
 * Full-speed allocation against a hard limit. The child's progress lines are
 * timestamped as they arrive; the allocation rate is taken over the last
 * 16 MiB before the kill. As in the issue, detection delay = overshoot / rate,
 * where overshoot is the RSS at the kill minus the hard limit.
 */
/* One run: returns the detection delay in ms, or -1 if there was no kill. */
static double hog_run(unsigned int hard_mib, int use_memory_hog)
{
	static uint64_t t_at[8192];	/* t_at[m]: when "allocated=m MiB" arrived */
	char *argv[] = { "/bin/memory_hog", "1", "0", NULL };
	char buf[4096], *line, *nl;
	struct pollfd pfd[2];
	struct cm_event ev;
	struct cm_query q;
	struct ctr c;
	uint64_t deadline, hard = (uint64_t)hard_mib * MIB, base;
	long mib, last = 0, first;
	size_t have = 0;
	double rate, over, delay_ms;
	int out[2], ok = 0, status;
	ssize_t n;

	open_dev();
	if (pipe2(out, O_CLOEXEC)) {
		perror("pipe");
		exit(2);
	}
	spawn_stdout = out[1];
	c = spawn(use_memory_hog ? CTR_EXEC : CTR_HOG, argv);
	spawn_stdout = -1;
	close(out[1]);
	if (cm_register(c.pid, hard / 2, hard, "hogtest") || cm_query(c.pid, &q)) {
		result(0, "hog_register", "%s", strerror(errno));
		reap(&c, SIGKILL);
		close(out[0]);
		return -1;
	}
	base = q.rss_bytes;
	memset(t_at, 0, sizeof(t_at));
	release(&c);
	deadline = now_ns() + 60000000000ULL;
	pfd[0].fd = dev;
	pfd[0].events = POLLIN;
	pfd[1].fd = out[0];
	pfd[1].events = POLLIN;
	while (!ok && now_ns() < deadline) {
		if (poll(pfd, 2, 1000) <= 0)
			continue;
		if (pfd[1].revents & POLLIN) {
			n = read(out[0], buf + have, sizeof(buf) - 1 - have);
			if (n > 0) {
				uint64_t t = now_ns();

				have += n;
				buf[have] = 0;
				for (line = buf; (nl = strchr(line, '\n')); line = nl + 1) {
					*nl = 0;
					if (sscanf(line, "memory_hog: allocated=%ld", &mib) == 1 ||
					    sscanf(line, "allocated=%ld", &mib) == 1)
						if (mib > 0 && mib < 8192) {
							t_at[mib] = t;
							last = mib;
						}
				}
				have = strlen(line);
				memmove(buf, line, have);
			}
		}
		if (pfd[0].revents & POLLIN) {
			read_events(0);
			ok = wait_event(CM_EVENT_HARD_KILL, c.pid, 0, &ev);
		}
	}
	status = reap(&c, ok ? 0 : SIGKILL);
	close(out[0]);
	if (!ok || !killed_by_sigkill(status)) {
		printf("hog: no kill (event=%d status=%#x)\n", ok, status);
		return -1;
	}
	/* Lines that arrived before the kill, over the last 16 MiB of them. */
	while (last > 0 && (!t_at[last] || t_at[last] > ev.timestamp_ns))
		last--;
	first = last > 16 ? last - 16 : 1;
	while (first < last && !t_at[first])
		first++;
	if (last <= first) {
		printf("hog: too few progress lines (%ld)\n", last);
		return -1;
	}
	rate = (double)(last - first) * MIB / ((t_at[last] - t_at[first]) / 1e9);
	over = (double)ev.rss_bytes - (double)hard;
	delay_ms = over > 0 ? over / rate * 1000 : 0;
	printf("hog: workload=%s hard=%u MiB base_rss=%.2f MiB alloc_rate=%.0f MiB/s "
	       "peak_rss=%.2f MiB overshoot=%.2f MiB detection_delay=%.2f ms\n",
	       use_memory_hog ? "memory_hog" : "allocator", hard_mib, base / (double)MIB,
	       rate / MIB, ev.rss_bytes / (double)MIB, over / MIB, delay_ms);
	return delay_ms;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * @runs full-speed runs; the gate is on the median, because on a TCG guest a
 * host that is busy elsewhere can stall a virtual CPU for milliseconds.
 */
static void test_hog(unsigned int hard_mib, double max_delay_ms, int use_memory_hog, int runs)
{
	double d[16];
	int i, killed = 0;

	if (runs < 1 || runs > 16)
		runs = 1;
	for (i = 0; i < runs; i++) {
		d[i] = hog_run(hard_mib, use_memory_hog);
		killed += d[i] >= 0;
	}
	result(killed == runs, "hog_killed", "%d of %d runs killed", killed, runs);
	if (killed != runs)
		return;
	qsort(d, runs, sizeof(d[0]), cmp_double);
	printf("hog: %d runs, detection delay min %.2f median %.2f max %.2f ms\n",
	       runs, d[0], d[runs / 2], d[runs - 1]);
	result(d[runs / 2] <= max_delay_ms, "hog_detection_delay",
	       "median %.2f ms > %.2f ms", d[runs / 2], max_delay_ms);
}

static void test_many(int n)
{
	struct ctr *c = calloc(n, sizeof(*c));
	struct cm_stats s0, s;
	struct cm_query q;
	char name[32];
	int i, reg = 0, queried = 0, killed = 0, status, gone;

	open_dev();
	/* Containers of earlier checks may still be on their way out. */
	for (i = 0; i < 300; i++) {
		cm_get_stats(&s0);
		if (s0.nr_entries == 0)
			break;
		msleep(10);
	}
	for (i = 0; i < n; i++)
		c[i] = spawn(CTR_SLEEP, NULL);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "many-%d", i);
		reg += cm_register(c[i].pid, 32 * MIB, 64 * MIB, name) == 0;
		release(&c[i]);
	}
	cm_get_stats(&s);
	result(reg == n && s.nr_entries == s0.nr_entries + n, "many_registered",
	       "%d of %d registered, %u entries", reg, n, s.nr_entries);
	msleep(500);
	for (i = 0; i < n; i++)
		queried += cm_query(c[i].pid, &q) == 0 && q.nr_procs == 1;
	result(queried == n, "many_all_queryable", "%d of %d", queried, n);

	for (i = 0; i < n; i++)
		kill(c[i].pid, SIGKILL);
	for (i = 0; i < n; i++) {
		waitpid(c[i].pid, &status, 0);
		killed += killed_by_sigkill(status);
		close(c[i].go);
	}
	result(killed == n, "many_exited", "%d of %d", killed, n);
	/* The monitor drops exited containers by itself, without UNREGISTER. */
	for (i = 0; i < 300; i++) {
		cm_get_stats(&s);
		if (s.nr_entries == s0.nr_entries)
			break;
		msleep(10);
	}
	result(s.nr_entries == s0.nr_entries, "many_no_stale_entries",
	       "%u entries left, want %u", s.nr_entries, s0.nr_entries);
	read_events(100);
	for (gone = 0, i = 0; i < n; i++)
		gone += count_events(CM_EVENT_GONE, c[i].pid) == 1;
	result(gone == n, "many_gone_events", "%d of %d", gone, n);
	for (queried = 0, i = 0; i < n; i++)
		queried += cm_query(c[i].pid, &q) == -ENOENT;
	result(queried == n, "many_query_enoent", "%d of %d", queried, n);
	free(c);
}

/* Leave @n registered containers behind (for rmmod with live entries). */
static void hold(int n)
{
	char name[32];
	struct ctr c;
	int i, ok = 0;

	open_dev();
	for (i = 0; i < n; i++) {
		c = spawn(CTR_SLEEP, NULL);
		snprintf(name, sizeof(name), "hold-%d", i);
		ok += cm_register(c.pid, 0, 64 * MIB, name) == 0;
		release(&c);
		printf("%d\n", c.pid);
	}
	result(ok == n, "hold_registered", "%d of %d", ok, n);
}

static void print_stats(int want, const char *check)
{
	struct cm_stats s;

	open_dev();
	if (cm_get_stats(&s)) {
		result(0, "stats", "%s", strerror(errno));
		return;
	}
	printf("stats: entries=%u runs=%llu checks=%llu total_ns=%llu max_run_ns=%llu dropped=%llu\n",
	       s.nr_entries, (unsigned long long)s.runs, (unsigned long long)s.checks,
	       (unsigned long long)s.total_ns, (unsigned long long)s.max_run_ns,
	       (unsigned long long)s.events_dropped);
	if (want >= 0)
		result(s.nr_entries == (unsigned int)want, check, "%u entries, want %d",
		       s.nr_entries, want);
}

/* Cost of the periodic check with @n idle containers over @secs seconds. */
static void idlecost(int n, int secs, uint64_t hard, int sig)
{
	struct cm_register r;
	struct ctr *c = calloc(n, sizeof(*c));
	struct cm_stats a, b;
	char name[32];
	double per_check, checks_s, cpu;
	int i, reg = 0;

	open_dev();
	for (i = 0; i < n; i++) {
		c[i] = spawn(CTR_SLEEP, NULL);
		snprintf(name, sizeof(name), "idle-%d", i);
		if (sig) {
			/* The ABI 2 path: a soft limit with a signal to send, never crossed. */
			memset(&r, 0, sizeof(r));
			r.pid = c[i].pid;
			r.soft_bytes = hard / 2;
			r.hard_bytes = hard;
			r.flags = CM_REGISTER_SOFT_SIGNAL | CM_REGISTER_SIGNAL(sig);
			snprintf(r.name, sizeof(r.name), "%s", name);
			reg += xioctl(CM_IOC_REGISTER, &r) == 0;
		} else {
			reg += cm_register(c[i].pid, 0, hard, name) == 0;
		}
		release(&c[i]);
	}
	msleep(1000);	/* let the first checks spread out */
	cm_get_stats(&a);
	msleep(secs * 1000);
	cm_get_stats(&b);
	per_check = (double)(b.total_ns - a.total_ns) / (b.checks - a.checks + !(b.checks - a.checks));
	checks_s = (double)(b.checks - a.checks) / secs;
	cpu = (double)(b.total_ns - a.total_ns) / (secs * 1e9) * 100;
	printf("idlecost: containers=%d soft_signal=%s hard=%llu MiB registered=%d checks/s=%.0f runs/s=%.1f "
	       "ns/check=%.0f full_cycle_us=%.1f max_run_us=%.1f cpu=%.3f%%\n",
	       n, sig == SIGTERM ? "SIGTERM" : sig ? "yes" : "none", (unsigned long long)(hard / MIB), reg, checks_s,
	       (double)(b.runs - a.runs) / secs, per_check, per_check * n / 1000,
	       b.max_run_ns / 1000.0, cpu);
	result(reg == n && b.checks > a.checks, "idlecost_measured", "registered %d", reg);
	if (sig)
		printf("idlecost: %d containers with a soft signal cost %.3f %% of a CPU: %s 1 %%\n",
		       n, cpu, cpu < 1.0 ? "under" : "NOT under");
	for (i = 0; i < n; i++)
		kill(c[i].pid, SIGKILL);
	for (i = 0; i < n; i++)
		waitpid(c[i].pid, NULL, 0);
	free(c);
}

/* Sum of the resident pages of @dir's processes (what the module adds up), in KiB; *nprocs. */
static long long cgroup_rss_kib(const char *dir, int *nprocs)
{
	char path[512];
	long long sum = 0, size, res;
	FILE *f, *m;
	int pid;

	*nprocs = 0;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fscanf(f, "%d", &pid) == 1) {
		snprintf(path, sizeof(path), "/proc/%d/statm", pid);
		m = fopen(path, "r");
		if (!m)
			continue;
		if (fscanf(m, "%lld %lld", &size, &res) == 2) {
			sum += res * (sysconf(_SC_PAGESIZE) / 1024);
			(*nprocs)++;
		}
		fclose(m);
	}
	fclose(f);
	return sum;
}

static long long read_kib(const char *dir, const char *file)
{
	char path[512];
	unsigned long long v;
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (!f)
		return -1;
	ok = fscanf(f, "%llu", &v) == 1;
	fclose(f);
	return ok ? (long long)(v / 1024) : -1;
}

/*
 * RSS over time of one container's cgroup, for the soft-limit figure: waits (up
 * to 20 s) for the group to have a process, then prints a sample every
 * @interval_ms until it has none left or @max_ms have passed. CLOCK_REALTIME,
 * so the samples line up with the supervisor's event times.
 */
static void rsswatch(const char *dir, int interval_ms, int max_ms)
{
	struct timespec ts;
	uint64_t start, deadline;
	long long rss, cur;
	int nprocs = 0, seen = 0;

	deadline = now_ns() + 20000000000ULL;
	while (now_ns() < deadline && (cgroup_rss_kib(dir, &nprocs) < 0 || nprocs == 0))
		msleep(2);
	start = now_ns();
	while (now_ns() - start < (uint64_t)max_ms * 1000000ULL) {
		rss = cgroup_rss_kib(dir, &nprocs);
		if (rss < 0 || nprocs == 0)
			break;
		cur = read_kib(dir, "memory.current");
		if (cur < 0)
			cur = read_kib(dir, "memory.usage_in_bytes");
		clock_gettime(CLOCK_REALTIME, &ts);
		printf("sample %lld %lld %lld %d\n", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
		       rss, cur, nprocs);
		seen++;
		msleep(interval_ms);
	}
	printf("rsswatch: %d samples of %s\n", seen, dir);
}

static void query(pid_t pid)
{
	struct cm_query q;
	int rc;

	open_dev();
	rc = cm_query(pid, &q);
	if (rc) {
		printf("none: %s\n", strerror(-rc));
		exit(1);
	}
	printf("entry pid=%d name=%.*s soft=%llu hard=%llu flags=0x%x rss=%llu procs=%u\n", q.pid,
	       (int)sizeof(q.name), q.name, (unsigned long long)q.soft_bytes,
	       (unsigned long long)q.hard_bytes, q.flags, (unsigned long long)q.rss_bytes, q.nr_procs);
}

/* One line appended to @path (opened per line, so a reader never sees half a line). */
static void note(const char *path, const char *fmt, ...)
{
	va_list ap;
	FILE *f = fopen(path, "a");

	if (!f)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

static void subreaper(const char *path, char **cmd)
{
	pid_t child, p;
	int st;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) {
		note(path, "error prctl: %s\n", strerror(errno));
		exit(1);
	}
	child = fork();
	if (child < 0) {
		note(path, "error fork: %s\n", strerror(errno));
		exit(1);
	}
	if (child == 0) {
		execvp(cmd[0], cmd);
		fprintf(stderr, "exec %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	for (;;) {
		p = waitpid(-1, &st, 0);
		if (p < 0) {
			if (errno == EINTR)
				continue;
			break;	/* ECHILD: nothing left */
		}
		if (p == child)
			note(path, "cmd exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		else if (WIFSIGNALED(st))
			note(path, "pid %d signal %d\n", p, WTERMSIG(st));
		else
			note(path, "pid %d exit %d\n", p, WEXITSTATUS(st));
	}
	note(path, "done\n");
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(cmd, "errors"))
		test_errors();
	else if (!strcmp(cmd, "idle"))
		test_idle();
	else if (!strcmp(cmd, "soft"))
		test_soft();
	else if (!strcmp(cmd, "softsig"))
		test_softsig();
	else if (!strcmp(cmd, "shell"))
		test_shell();
	else if (!strcmp(cmd, "hog") && argc >= 4)
		test_hog(atoi(argv[2]), atof(argv[3]), argc > 4 && !strcmp(argv[4], "memory_hog"),
			 argc > 5 ? atoi(argv[5]) : 1);
	else if (!strcmp(cmd, "many") && argc == 3)
		test_many(atoi(argv[2]));
	else if (!strcmp(cmd, "hold") && argc == 3)
		hold(atoi(argv[2]));
	else if (!strcmp(cmd, "stats"))
		print_stats(argc > 2 ? atoi(argv[2]) : -1, argc > 3 ? argv[3] : "stats_entries");
	else if (!strcmp(cmd, "idlecost") && argc >= 4)
		idlecost(atoi(argv[2]), atoi(argv[3]),
			 (argc > 4 ? strtoull(argv[4], NULL, 0) : 1024) * MIB, 0);
	else if (!strcmp(cmd, "idlecost-sig") && argc >= 4)
		idlecost(atoi(argv[2]), atoi(argv[3]),
			 (argc > 4 ? strtoull(argv[4], NULL, 0) : 1024) * MIB, SIGTERM);
	else if (!strcmp(cmd, "query") && argc == 3)
		query(atoi(argv[2]));
	else if (!strcmp(cmd, "reap") && argc >= 4)
		subreaper(argv[2], argv + 3);
	else if (!strcmp(cmd, "rsswatch") && argc == 5)
		rsswatch(argv[2], atoi(argv[3]), atoi(argv[4]));
	else {
		fprintf(stderr, "usage: see the comment at the top of cm_test.c\n");
		return 2;
	}
	return failures ? 1 : 0;
}
