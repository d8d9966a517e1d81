// SPDX-License-Identifier: GPL-2.0
/*
 * container_monitor - RSS limits for containers, enforced from the kernel.
 *
 * The supervisor registers a container by the host pid of its init (PID 1 of
 * the container's PID namespace) with a soft and a hard limit in bytes.  The
 * container's RSS is the sum of get_mm_rss() over every process of that PID
 * namespace (found through the namespace's pid IDR, so a shell whose child
 * allocates is counted as a whole).  Above soft: one KERN_WARNING line and a
 * CM_EVENT_SOFT_LIMIT event, once per crossing.  Above hard: SIGKILL to every
 * process of the namespace, one line, and a CM_EVENT_HARD_KILL event.  When
 * the init has exited the entry is dropped with a CM_EVENT_GONE event.
 * With a soft signal (CM_REGISTER_SOFT_SIGNAL), crossing soft also sends that
 * signal to the registered pid (the container's init, which forwards it to
 * the command's process group), once: it is re-armed when RSS falls below
 * CM_SOFT_REARM_PERCENT of soft (a CM_EVENT_SOFT_SIGNAL event and a line).
 * Events are fixed-size struct cm_event records; every open file has its own
 * queue, so the supervisor and a debugging tool can both read them.
 *
 * Each entry holds a struct pid reference, never a bare number: after the
 * container exits, its number may belong to an unrelated process.
 *
 * When to check: a polling interval cannot be both cheap for idle containers
 * and quick for a container that suddenly allocates as fast as it can.  The
 * interval is therefore derived from what the container could do before it
 * is checked again:
 *
 *	delay = headroom / max(burst_rate, observed_rate) + detect_ms
 *	        clamped to [1 jiffy, interval_ms]
 *
 * headroom is hard - rss.  burst_rate (module parameter burst_mib_s) is the
 * fastest rate a container is assumed to be able to fault memory in, and
 * observed_rate is the container's own recent growth (halved on every check
 * without growth), which takes over when it is faster than the assumption.
 * A container that starts allocating at up to that rate right after a check
 * cannot reach its hard limit before the next check, and is caught at most
 * detect_ms (+ one jiffy of timer granularity) after crossing it.  Near the
 * limit, or growing fast, the delay shrinks to the floor of one jiffy
 * (4 ms at HZ=250); an idle container with a lot of headroom is looked at
 * only every interval_ms (default 1000 ms).
 *
 * One self-re-arming delayed_work serves all entries: each run checks the
 * entries whose next_check is due, or due within a quarter of their own
 * interval (checking early never weakens the bound, and it lets one run serve
 * many idle entries instead of waking up for each), and re-arms itself for the
 * earliest next one; with no entries it is not armed at all.  Entries on a
 * short interval are checked first, and one run checks at most CM_RUN_BUDGET
 * of the others, so a thousand idle containers falling due together cannot
 * hold up the check of one that is about to cross its limit.  A run costs in
 * proportion to what it checks, not to the number of entries: urgent entries
 * are kept at the head of the list (and the pass over them is skipped when
 * there are none), every other entry checked moves to the tail, so the ones
 * due next are found first and a run that stopped at its budget resumes where
 * it left off; the earliest next check is taken on the same walk.  It runs in process
 * context on a WQ_HIGHPRI workqueue, so a CPU-bound allocating container
 * cannot starve it, and may take cm_lock (a mutex).  RSS is read under
 * task_lock(), which pins task->mm, so no mm reference is taken or dropped.
 */
#define pr_fmt(fmt) "container_monitor: " fmt

#include <linux/capability.h>
#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/ktime.h>
#include <linux/list.h>
#include <linux/math64.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/pid_namespace.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "monitor_uapi.h"

static unsigned int interval_ms = 1000;
module_param(interval_ms, uint, 0644);
MODULE_PARM_DESC(interval_ms, "Longest delay between two checks of a container, ms (default 1000)");

static unsigned int detect_ms = 5;
module_param(detect_ms, uint, 0644);
MODULE_PARM_DESC(detect_ms, "Target delay between crossing the hard limit and the kill, ms (default 5)");

static unsigned int burst_mib_s = 4096;
module_param(burst_mib_s, uint, 0644);
MODULE_PARM_DESC(burst_mib_s, "Allocation rate a container is assumed capable of, MiB/s (default 4096)");

#define CM_MAX_ENTRIES	65536
#define CM_QUEUE_LEN	256	/* events per reader */
#define CM_RUN_BUDGET	128	/* idle checks per run before letting go */
#define CM_MIB		(1ULL << 20)
#define CM_TIB		(1ULL << 40)

struct cm_entry {
	struct list_head node;		/* cm_lock */
	struct pid *pid;		/* reference held; immutable */
	pid_t nr;			/* as registered; immutable */
	bool pidns;			/* pid is a PID namespace init; immutable */
	u64 soft;			/* immutable */
	u64 hard;			/* immutable */
	int soft_sig;			/* 0 = none; immutable */
	char name[CM_NAME_LEN];		/* immutable */
	/* The rest is protected by cm_lock. */
	u64 rss;
	u64 peak;
	u64 rate;			/* bytes/s, recent growth */
	u64 last_ns;			/* ktime of the last check */
	u32 flags;			/* CM_FLAG_* */
	u32 nr_procs;
	unsigned long next_check;	/* jiffies */
	unsigned long slack;		/* may be checked this early, jiffies */
	bool urgent;			/* on a short interval: checked first */
};

struct cm_reader {
	struct list_head node;		/* cm_lock */
	wait_queue_head_t wait;
	spinlock_t lock;		/* protects head, count, ring */
	unsigned int head;
	unsigned int count;
	struct cm_event ring[CM_QUEUE_LEN];
};

/* cm_lock protects the two lists, the work's arming state and cm_stats. */
static DEFINE_MUTEX(cm_lock);
static LIST_HEAD(cm_entries);
static LIST_HEAD(cm_readers);
static unsigned int cm_nr_entries;
static unsigned int cm_nr_urgent;	/* entries with ->urgent set */
static bool cm_armed;			/* cm_work queued for cm_due */
static unsigned long cm_due;
static bool cm_exiting;
static struct cm_stats cm_stats;

static struct workqueue_struct *cm_wq;
static void cm_work_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(cm_work, cm_work_fn);

static void cm_emit(struct cm_entry *e, u32 type, u64 rss, u64 limit)
{
	struct cm_reader *r;
	struct cm_event ev;

	lockdep_assert_held(&cm_lock);
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.pid = e->nr;
	ev.rss_bytes = rss;
	ev.limit_bytes = limit;
	ev.timestamp_ns = ktime_get_ns();
	memcpy(ev.name, e->name, CM_NAME_LEN);

	list_for_each_entry(r, &cm_readers, node) {
		spin_lock(&r->lock);
		/* A reader that does not keep up loses its oldest events. */
		if (r->count == CM_QUEUE_LEN) {
			r->head = (r->head + 1) % CM_QUEUE_LEN;
			r->count--;
			cm_stats.events_dropped++;
		}
		r->ring[(r->head + r->count) % CM_QUEUE_LEN] = ev;
		r->count++;
		spin_unlock(&r->lock);
		wake_up_interruptible_poll(&r->wait, EPOLLIN | EPOLLRDNORM);
	}
}

/* RSS of one process: its mm is pinned by task_lock() of a thread using it. */
static u64 cm_process_rss(struct task_struct *p)
{
	struct task_struct *t;
	u64 rss = 0;

	/* Usually the leader's own mm: no walk over the thread list. */
	task_lock(p);
	if (p->mm) {
		rss = get_mm_rss(p->mm);
		task_unlock(p);
		return rss << PAGE_SHIFT;
	}
	task_unlock(p);
	/* The leader may have exited while other threads still run. */
	for_each_thread(p, t) {
		task_lock(t);
		if (t->mm) {
			rss = get_mm_rss(t->mm);
			task_unlock(t);
			break;
		}
		task_unlock(t);
	}
	return rss << PAGE_SHIFT;
}

/*
 * Sum RSS over the container.  Returns false when the container is gone (its
 * init has exited).  Processes sharing one mm without being threads (vfork,
 * CLONE_VM) are counted once each: a conservative overestimate.
 */
static bool cm_measure(struct cm_entry *e, u64 *rss, u32 *nr_procs)
{
	struct task_struct *init, *p;
	struct pid_namespace *ns;
	struct pid *pid;
	int nr;

	*rss = 0;
	*nr_procs = 0;
	rcu_read_lock();
	init = pid_task(e->pid, PIDTYPE_PID);
	if (!init || init->exit_state) {
		rcu_read_unlock();
		return false;
	}
	if (!e->pidns) {
		*rss = cm_process_rss(init);
		*nr_procs = 1;
		rcu_read_unlock();
		return true;
	}
	/* struct pid holds a reference on its namespace. */
	ns = ns_of_pid(e->pid);
	/*
	 * Only the init has a pid in the namespace (a single-process container,
	 * the usual case): no walk over its pid IDR.  A fork racing with this
	 * read is seen at the next check, as one racing with the walk would be.
	 */
	if ((READ_ONCE(ns->pid_allocated) & ~PIDNS_ADDING) == 1) {
		*rss = cm_process_rss(init);
		*nr_procs = 1;
		rcu_read_unlock();
		return true;
	}
	idr_for_each_entry(&ns->idr, pid, nr) {
		p = pid_task(pid, PIDTYPE_TGID);
		if (!p)
			continue;	/* a thread, not a process */
		*rss += cm_process_rss(p);
		(*nr_procs)++;
	}
	rcu_read_unlock();
	return true;
}

static void cm_kill(struct cm_entry *e)
{
	struct pid_namespace *ns;
	struct pid *pid;
	int nr;

	if (!e->pidns) {
		kill_pid(e->pid, SIGKILL, 1);
		return;
	}
	/* Every process at once: the init alone would let the others run on. */
	ns = ns_of_pid(e->pid);
	rcu_read_lock();
	idr_for_each_entry(&ns->idr, pid, nr) {
		if (pid_task(pid, PIDTYPE_TGID))
			kill_pid(pid, SIGKILL, 1);
	}
	rcu_read_unlock();
}

static void cm_free_entry(struct cm_entry *e)
{
	list_del(&e->node);
	cm_nr_entries--;
	cm_nr_urgent -= e->urgent;
	put_pid(e->pid);
	kfree(e);
}

/* Delay until the next check of @e, in jiffies (see the header comment). */
static unsigned long cm_next_delay(const struct cm_entry *e)
{
	unsigned long max_delay = max(msecs_to_jiffies(interval_ms), 1UL);
	u64 rate = max_t(u64, (u64)burst_mib_s << 20, e->rate);
	u64 headroom, ns;

	/* Re-kill stragglers until the init is gone; SIGKILL is already pending. */
	if (e->flags & CM_FLAG_HARD_KILLED)
		return max(msecs_to_jiffies(100), 1UL);
	headroom = e->rss < e->hard ? e->hard - e->rss : 0;
	/*
	 * x86 divq traps when the quotient does not fit in 64 bits: bound both
	 * sides (a TiB of headroom is "far", under 1 MiB/s is "not growing").
	 */
	headroom = min_t(u64, headroom, CM_TIB);
	ns = (u64)detect_ms * NSEC_PER_MSEC;
	if (rate >= CM_MIB)
		ns += mul_u64_u64_div_u64(headroom, NSEC_PER_SEC, rate);
	else
		ns = (u64)interval_ms * NSEC_PER_MSEC;
	return clamp_t(unsigned long, nsecs_to_jiffies(ns), 1, max_delay);
}

/*
 * Measure @e and act on its limits; @now is ktime_get_ns() of the caller, read
 * once per run (clock reads are not free, especially in a VM).  Returns false
 * if @e was gone and has been freed.  Called with cm_lock held.
 */
static bool cm_check(struct cm_entry *e, u64 now)
{
	unsigned long delay;
	u64 rss, dt;
	u32 nr_procs;

	lockdep_assert_held(&cm_lock);
	if (!cm_measure(e, &rss, &nr_procs)) {
		pr_info("GONE container=%s pid=%d peak=%llu\n",
			e->name, e->nr, e->peak);
		cm_emit(e, CM_EVENT_GONE, e->rss, 0);
		cm_free_entry(e);
		return false;
	}

	dt = now - e->last_ns;
	if (e->last_ns && dt >= NSEC_PER_USEC && rss > e->rss)
		/* Bounded like in cm_next_delay(): at most 2^40 * 2^30 / 2^10. */
		e->rate = max(mul_u64_u64_div_u64(min_t(u64, rss - e->rss, CM_TIB),
						  NSEC_PER_SEC, dt),
			      e->rate / 2);
	else if (dt >= NSEC_PER_USEC)
		e->rate /= 2;
	e->last_ns = now;
	e->rss = rss;
	e->peak = max(e->peak, rss);
	e->nr_procs = nr_procs;

	/* Soft first, so a jump over both limits still logs both, in order. */
	if (e->soft && rss > e->soft) {
		if (!(e->flags & CM_FLAG_SOFT_EXCEEDED)) {
			e->flags |= CM_FLAG_SOFT_EXCEEDED;
			pr_warn("SOFT LIMIT container=%s pid=%d rss=%llu soft=%llu\n",
				e->name, e->nr, rss, e->soft);
			cm_emit(e, CM_EVENT_SOFT_LIMIT, rss, e->soft);
		}
	} else {
		e->flags &= ~CM_FLAG_SOFT_EXCEEDED;	/* re-arm the warning */
	}
	/* The signal asks the application to act: once, until it has really let go. */
	if (e->soft_sig && rss > e->soft &&
	    !(e->flags & (CM_FLAG_SOFT_SIGNALLED | CM_FLAG_HARD_KILLED))) {
		e->flags |= CM_FLAG_SOFT_SIGNALLED;
		kill_pid(e->pid, e->soft_sig, 1);
		pr_warn("SOFT SIGNAL container=%s pid=%d sig=%d rss=%llu soft=%llu\n",
			e->name, e->nr, e->soft_sig, rss, e->soft);
		cm_emit(e, CM_EVENT_SOFT_SIGNAL, rss, e->soft);
	} else if (rss < div_u64(e->soft * CM_SOFT_REARM_PERCENT, 100)) {
		e->flags &= ~CM_FLAG_SOFT_SIGNALLED;
	}

	if (rss > e->hard) {
		if (!(e->flags & CM_FLAG_HARD_KILLED)) {
			e->flags |= CM_FLAG_HARD_KILLED;
			pr_warn("HARD LIMIT container=%s pid=%d rss=%llu hard=%llu killing procs=%u\n",
				e->name, e->nr, rss, e->hard, nr_procs);
			cm_emit(e, CM_EVENT_HARD_KILL, rss, e->hard);
		}
		cm_kill(e);
	} else if (e->flags & CM_FLAG_HARD_KILLED) {
		/* Memory is being freed: make sure forked stragglers die too. */
		cm_kill(e);
	}

	delay = cm_next_delay(e);
	e->next_check = jiffies + delay;
	/* Checking early is always safe: lets one run serve many idle entries. */
	e->slack = delay / 4;
	cm_nr_urgent -= e->urgent;
	e->urgent = delay <= msecs_to_jiffies(2 * detect_ms);
	cm_nr_urgent += e->urgent;
	return true;
}

/* Arm cm_work for @when unless it is already armed for an earlier time. */
static void cm_arm(unsigned long when)
{
	unsigned long now = jiffies;

	lockdep_assert_held(&cm_lock);
	if (cm_exiting)
		return;
	if (cm_armed && !time_before(when, cm_due))
		return;
	cm_armed = true;
	cm_due = when;
	mod_delayed_work(cm_wq, &cm_work, time_after(when, now) ? when - now : 0);
}

static void cm_work_fn(struct work_struct *work)
{
	unsigned long now, next;
	struct cm_entry *e, *tmp, *moved = NULL;
	u64 start, spent, checks = 0;
	unsigned int urgent, seen = 0;
	bool more = false;

	mutex_lock(&cm_lock);
	start = ktime_get_ns();
	cm_armed = false;
	now = jiffies;
	next = now + max(msecs_to_jiffies(interval_ms), 1UL);

	/*
	 * Pass 0: the entries on a short interval (near their limit or growing
	 * fast), so they never wait behind idle ones.  They are kept at the
	 * head: the walk ends once it has seen as many as there were.
	 */
	urgent = cm_nr_urgent;
	list_for_each_entry_safe(e, tmp, &cm_entries, node) {
		if (seen == urgent)
			break;
		if (!e->urgent)
			continue;
		seen++;
		if (time_before(now + e->slack, e->next_check))
			continue;
		checks++;
		if (cm_check(e, start) && e->urgent)	/* may free e */
			list_move(&e->node, &cm_entries);
	}

	/*
	 * Pass 1: the others, at most CM_RUN_BUDGET of them: with more due,
	 * the work runs again at once, after cm_lock has been let go.  Each one
	 * checked goes to the tail (or to the head if it turned urgent), so the
	 * walk ends at the first one moved there, having seen every entry once:
	 * that walk also finds the earliest next check.
	 */
	list_for_each_entry_safe(e, tmp, &cm_entries, node) {
		if (e == moved)
			break;
		if (!e->urgent && !time_before(now + e->slack, e->next_check)) {
			if (checks >= CM_RUN_BUDGET) {
				more = true;
				break;
			}
			checks++;
			if (!cm_check(e, start))	/* freed */
				continue;
			if (e->urgent) {
				list_move(&e->node, &cm_entries);
			} else {
				list_move_tail(&e->node, &cm_entries);
				if (!moved)
					moved = e;
			}
		}
		if (time_before(e->next_check, next))
			next = e->next_check;
	}
	if (more)
		next = now;

	spent = ktime_get_ns() - start;
	cm_stats.runs++;
	cm_stats.checks += checks;
	cm_stats.total_ns += spent;
	cm_stats.max_run_ns = max(cm_stats.max_run_ns, spent);
	if (!list_empty(&cm_entries))
		cm_arm(next);
	mutex_unlock(&cm_lock);
}

/* Entry for @nr: the live process with that number, else a dead one. */
static struct cm_entry *cm_find(pid_t nr)
{
	struct pid *pid = find_get_pid(nr);
	struct cm_entry *e, *stale = NULL;

	lockdep_assert_held(&cm_lock);
	list_for_each_entry(e, &cm_entries, node) {
		if (pid && e->pid == pid) {
			put_pid(pid);
			return e;
		}
		if (e->nr == nr && !pid_has_task(e->pid, PIDTYPE_PID))
			stale = e;
	}
	put_pid(pid);
	return stale;
}

static bool cm_name_valid(const char *name)
{
	size_t len = strnlen(name, CM_NAME_LEN);
	size_t i;

	if (len == 0 || len == CM_NAME_LEN)
		return false;
	/* Printable ASCII without spaces, so dmesg lines stay parseable. */
	for (i = 0; i < len; i++)
		if (name[i] <= ' ' || name[i] >= 0x7f)
			return false;
	return true;
}

static long cm_ioctl_register(void __user *arg)
{
	struct cm_register req;
	struct task_struct *task;
	struct cm_entry *e, *old;
	struct pid_namespace *ns;
	struct pid *pid;
	long ret;
	int sig;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	if (req.pid <= 0 || !req.hard_bytes ||
	    req.soft_bytes > req.hard_bytes || !cm_name_valid(req.name))
		return -EINVAL;
	sig = (req.flags & CM_REGISTER_SIGNAL_MASK) >> CM_REGISTER_SIGNAL_SHIFT;
	if (req.flags & ~(CM_REGISTER_SOFT_SIGNAL | CM_REGISTER_SIGNAL_MASK))
		return -EINVAL;
	if (req.flags & CM_REGISTER_SOFT_SIGNAL) {
		/* A signal needs a soft limit to fire at; the hard limit is the kill. */
		if (!req.soft_bytes || sig <= 0 || !valid_signal(sig) ||
		    sig == SIGKILL || sig == SIGSTOP)
			return -EINVAL;
	} else if (sig) {
		return -EINVAL;
	}

	pid = find_get_pid(req.pid);
	if (!pid)
		return -ESRCH;
	task = get_pid_task(pid, PIDTYPE_PID);
	if (!task || task->exit_state || (task->flags & PF_EXITING)) {
		ret = -ESRCH;
		goto err_task;
	}
	/* Killing those would take the machine down, not a container. */
	if ((task->flags & PF_KTHREAD) || is_global_init(task)) {
		ret = -EINVAL;
		goto err_task;
	}
	put_task_struct(task);

	e = kzalloc(sizeof(*e), GFP_KERNEL);
	if (!e) {
		ret = -ENOMEM;
		goto err_pid;
	}
	e->pid = pid;
	e->nr = req.pid;
	ns = ns_of_pid(pid);
	e->pidns = ns->level > 0 && pid_nr_ns(pid, ns) == 1;
	e->soft = req.soft_bytes;
	e->hard = req.hard_bytes;
	e->soft_sig = (req.flags & CM_REGISTER_SOFT_SIGNAL) ? sig : 0;
	memcpy(e->name, req.name, CM_NAME_LEN);
	if (e->pidns)
		e->flags |= CM_FLAG_PIDNS;

	mutex_lock(&cm_lock);
	old = cm_find(req.pid);
	if (old && old->pid == pid) {
		ret = -EEXIST;
		goto err_unlock;
	}
	if (old)	/* same number, dead process: drop it now */
		cm_check(old, ktime_get_ns());
	if (cm_nr_entries >= CM_MAX_ENTRIES) {
		ret = -ENOSPC;
		goto err_unlock;
	}
	list_add_tail(&e->node, &cm_entries);
	cm_nr_entries++;
	pr_info("REGISTER container=%s pid=%d soft=%llu hard=%llu%s sig=%d\n",
		e->name, e->nr, e->soft, e->hard,
		e->pidns ? " pidns" : "", e->soft_sig);
	/* First measurement now: a container already over its limit dies now. */
	if (!cm_check(e, ktime_get_ns())) {
		mutex_unlock(&cm_lock);
		return -ESRCH;
	}
	if (e->urgent)		/* where cm_work_fn looks for urgent entries */
		list_move(&e->node, &cm_entries);
	cm_arm(e->next_check);
	mutex_unlock(&cm_lock);
	return 0;

err_unlock:
	mutex_unlock(&cm_lock);
	kfree(e);
	goto err_pid;
err_task:
	if (task)
		put_task_struct(task);
err_pid:
	put_pid(pid);
	return ret;
}

static long cm_ioctl_unregister(void __user *arg)
{
	struct cm_unregister req;
	struct cm_entry *e;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	if (req.reserved || req.pid <= 0)
		return -EINVAL;

	mutex_lock(&cm_lock);
	e = cm_find(req.pid);
	if (!e) {
		mutex_unlock(&cm_lock);
		return -ENOENT;
	}
	pr_info("UNREGISTER container=%s pid=%d peak=%llu\n",
		e->name, e->nr, e->peak);
	cm_free_entry(e);
	mutex_unlock(&cm_lock);
	return 0;
}

static long cm_ioctl_query(void __user *arg)
{
	struct cm_query q;
	struct cm_entry *e;
	pid_t nr;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	nr = q.pid;
	/* The output fields are ignored on input; flags and reserved are not. */
	if (nr <= 0 || q.flags || q.reserved)
		return -EINVAL;
	memset(&q, 0, sizeof(q));

	mutex_lock(&cm_lock);
	e = cm_find(nr);
	/* A query is a check: its figures are current, a dead container goes. */
	if (!e || !cm_check(e, ktime_get_ns())) {
		mutex_unlock(&cm_lock);
		return -ENOENT;
	}
	if (e->urgent)
		list_move(&e->node, &cm_entries);
	cm_arm(e->next_check);
	q.pid = e->nr;
	q.flags = e->flags;
	q.rss_bytes = e->rss;
	q.peak_rss_bytes = e->peak;
	q.soft_bytes = e->soft;
	q.hard_bytes = e->hard;
	q.nr_procs = e->nr_procs;
	q.next_check_ms = jiffies_to_msecs(e->next_check - jiffies);
	memcpy(q.name, e->name, CM_NAME_LEN);
	mutex_unlock(&cm_lock);

	if (copy_to_user(arg, &q, sizeof(q)))
		return -EFAULT;
	return 0;
}

static long cm_ioctl_stats(void __user *arg)
{
	struct cm_stats s;

	memset(&s, 0, sizeof(s));
	mutex_lock(&cm_lock);
	s = cm_stats;
	s.nr_entries = cm_nr_entries;
	mutex_unlock(&cm_lock);

	if (copy_to_user(arg, &s, sizeof(s)))
		return -EFAULT;
	return 0;
}

static long cm_ioctl_version(void __user *arg)
{
	struct cm_version v = {
		.abi = CM_ABI_VERSION,
		.features = CM_FEATURE_SOFT_SIGNAL,
	};

	if (copy_to_user(arg, &v, sizeof(v)))
		return -EFAULT;
	return 0;
}

static long cm_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	/* Checked per call, not at open: a passed-on fd grants nothing. */
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;

	switch (cmd) {
	case CM_IOC_REGISTER:
		return cm_ioctl_register(uarg);
	case CM_IOC_UNREGISTER:
		return cm_ioctl_unregister(uarg);
	case CM_IOC_QUERY:
		return cm_ioctl_query(uarg);
	case CM_IOC_STATS:
		return cm_ioctl_stats(uarg);
	case CM_IOC_VERSION:
		return cm_ioctl_version(uarg);
	default:
		return -ENOTTY;
	}
}

static int cm_open(struct inode *inode, struct file *file)
{
	struct cm_reader *r;

	r = kvzalloc(sizeof(*r), GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	init_waitqueue_head(&r->wait);
	spin_lock_init(&r->lock);

	mutex_lock(&cm_lock);
	list_add_tail(&r->node, &cm_readers);
	mutex_unlock(&cm_lock);
	file->private_data = r;
	return stream_open(inode, file);
}

static int cm_release(struct inode *inode, struct file *file)
{
	struct cm_reader *r = file->private_data;

	mutex_lock(&cm_lock);
	list_del(&r->node);
	mutex_unlock(&cm_lock);
	kvfree(r);
	return 0;
}

/* Returns whole struct cm_event records only. */
static ssize_t cm_read(struct file *file, char __user *buf, size_t len,
		       loff_t *ppos)
{
	struct cm_reader *r = file->private_data;
	struct cm_event ev;
	size_t done = 0;
	int ret;

	if (len < sizeof(ev))
		return -EINVAL;

	spin_lock(&r->lock);
	while (!r->count) {
		spin_unlock(&r->lock);
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		ret = wait_event_interruptible(r->wait, READ_ONCE(r->count));
		if (ret)
			return ret;
		spin_lock(&r->lock);
	}
	while (r->count && len - done >= sizeof(ev)) {
		ev = r->ring[r->head];
		r->head = (r->head + 1) % CM_QUEUE_LEN;
		r->count--;
		spin_unlock(&r->lock);
		/* copy_to_user may fault and sleep: not under the spinlock. */
		if (copy_to_user(buf + done, &ev, sizeof(ev)))
			return done ? done : -EFAULT;
		done += sizeof(ev);
		spin_lock(&r->lock);
	}
	spin_unlock(&r->lock);
	return done;
}

static __poll_t cm_poll(struct file *file, poll_table *wait)
{
	struct cm_reader *r = file->private_data;

	poll_wait(file, &r->wait, wait);
	return READ_ONCE(r->count) ? EPOLLIN | EPOLLRDNORM : 0;
}

static const struct file_operations cm_fops = {
	.owner		= THIS_MODULE,
	.open		= cm_open,
	.release	= cm_release,
	.read		= cm_read,
	.poll		= cm_poll,
	.unlocked_ioctl	= cm_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,	/* same layout on 32-bit */
	.llseek		= no_llseek,
};

static struct miscdevice cm_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= CM_DEVICE_NAME,
	.fops	= &cm_fops,
	.mode	= 0600,
};

static int __init cm_init(void)
{
	int ret;

	cm_wq = alloc_workqueue("container_monitor",
				WQ_HIGHPRI | WQ_MEM_RECLAIM, 0);
	if (!cm_wq)
		return -ENOMEM;
	ret = misc_register(&cm_misc);
	if (ret) {
		destroy_workqueue(cm_wq);
		return ret;
	}
	pr_info("loaded: interval_ms=%u detect_ms=%u burst_mib_s=%u\n",
		interval_ms, detect_ms, burst_mib_s);
	return 0;
}

static void __exit cm_exit(void)
{
	struct cm_entry *e, *tmp;
	unsigned int n = 0;

	/* No new opens or ioctls; open files pin the module, so none remain. */
	misc_deregister(&cm_misc);

	mutex_lock(&cm_lock);
	cm_exiting = true;	/* the work must not re-arm itself */
	mutex_unlock(&cm_lock);
	cancel_delayed_work_sync(&cm_work);

	mutex_lock(&cm_lock);
	list_for_each_entry_safe(e, tmp, &cm_entries, node) {
		cm_free_entry(e);
		n++;
	}
	mutex_unlock(&cm_lock);
	destroy_workqueue(cm_wq);
	pr_info("unloaded, %u entries released\n", n);
}

module_init(cm_init);
module_exit(cm_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Per-container RSS soft/hard limits for the engine runtime");
MODULE_AUTHOR("engine project");
