/* soft_trap STEP_MIB INTERVAL_MS MAX_MIB [trap|ignore]: an application that wants to be told
 * before it is killed for its memory. Every INTERVAL_MS it allocates STEP_MIB MiB more (pages
 * touched, so resident) and prints the time since it started and its RSS. In trap mode (the
 * default) SIGTERM or SIGUSR1 makes it write a "checkpoint" line and exit 0, as a real
 * application would save its state and leave; in ignore mode it ignores SIGTERM and SIGUSR1 and
 * keeps growing (the hard limit must then kill it). At MAX_MIB it holds its memory.
 *
 * soft_trap latency SOFT_KIB STEP_KIB PAUSE_MS MAX_MIB: the soft-limit signal's latency, for
 * `make bench-monitor`. Grows by STEP_KIB (touched) every PAUSE_MS (0: at full speed) and after
 * each step adds up the RSS of every process it sees in /proc, which in a container is the
 * container's own PID namespace: the sum the kernel monitor compares with soft. It notes when
 * that sum first exceeds SOFT_KIB and when SIGTERM or SIGUSR1 arrives (CLOCK_MONOTONIC, read
 * in the handler), then prints one "latency:" line and exits 0. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got;

static void on_signal(int sig)
{
	got = sig;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static long rss_kib(void)
{
	long size, resident = -1;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &size, &resident) != 2)
			resident = -1;
		fclose(f);
	}
	return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int parse_long(const char *s, long max, long *out)
{
	char *end;
	errno = 0;
	*out = strtol(s, &end, 10);
	return !errno && end != s && !*end && *out >= 0 && *out <= max;
}

static volatile long long got_ns;

static void on_signal_timed(int sig)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe */
	got_ns = ts.tv_sec * 1000000000LL + ts.tv_nsec;
	got = sig;
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* RSS of every process in /proc, in KiB (the container's PID namespace in a container). */
static long all_rss_kib(void)
{
	char path[300];
	long sum = 0, size, res, kib = sysconf(_SC_PAGESIZE) / 1024;
	struct dirent *d;
	DIR *dir = opendir("/proc");
	if (!dir)
		return -1;
	while ((d = readdir(dir))) {
		if (d->d_name[0] < '1' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/statm", d->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%ld %ld", &size, &res) == 2)
			sum += res * kib;
		fclose(f);
	}
	closedir(dir);
	return sum;
}

static int latency(int argc, char **argv)
{
	long soft, step, pause, max, page = sysconf(_SC_PAGESIZE), rss = 0, cross_rss = 0;
	long long start = now_ns(), cross = 0;
	size_t done = 0, len;
	struct sigaction sa;
	char *p;

	if (argc != 6 || !parse_long(argv[2], 1L << 30, &soft) || !parse_long(argv[3], 1L << 20, &step) ||
	    step == 0 || !parse_long(argv[4], 60000L, &pause) || !parse_long(argv[5], 1L << 20, &max)) {
		fprintf(stderr, "usage: soft_trap latency SOFT_KIB STEP_KIB PAUSE_MS MAX_MIB\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal_timed;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	len = (size_t)max << 20;
	p = malloc(len);
	if (!p) {
		fprintf(stderr, "soft_trap: malloc %ld MiB failed\n", max);
		return 1;
	}
	while (!got && done < len) {
		size_t end = done + ((size_t)step << 10) < len ? done + ((size_t)step << 10) : len;
		for (; done < end; done += page)
			p[done] = 1;
		rss = all_rss_kib();
		if (!cross && rss > soft) {
			cross = now_ns();
			cross_rss = rss;
		}
		if (pause && !got) {
			struct timespec ts = { pause / 1000, (pause % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
	if (!got) {
		/* Reached MAX_MIB unsignalled: wait a little for a late signal, then say so. */
		for (int i = 0; i < 200 && !got; i++) {
			struct timespec ts = { 0, 10000000L };
			nanosleep(&ts, NULL);
		}
	}
	double rate = done / 1048576.0 / ((now_ns() - start) / 1e9);
	if (!got || !cross) {
		printf("latency: no signal (crossed=%d, rss=%ld KiB, soft=%ld KiB)\n", cross != 0, rss, soft);
		return 1;
	}
	printf("latency: soft_kib=%ld step_kib=%ld pause_ms=%ld alloc_mib_s=%.0f crossed_rss=%ld KiB "
	       "signal=%d delay_ms=%.3f\n", soft, step, pause, rate, cross_rss, (int)got,
	       (got_ns - cross) / 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "latency"))
		return latency(argc, argv);

	long step, interval, max, start = now_ms(), allocated = 0, page = sysconf(_SC_PAGESIZE);
	int ignore = argc == 5 && !strcmp(argv[4], "ignore");

	if (argc < 4 || argc > 5 || !parse_long(argv[1], 1L << 20, &step) || step == 0 ||
	    !parse_long(argv[2], 3600000L, &interval) || !parse_long(argv[3], 1L << 30, &max) ||
	    (argc == 5 && !ignore && strcmp(argv[4], "trap"))) {
		fprintf(stderr, "usage: soft_trap STEP_MIB INTERVAL_MS MAX_MIB [trap|ignore]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ignore ? SIG_IGN : on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	for (;;) {
		if (got) {
			/* What a real application would do: save its state, then leave on its own. */
			printf("soft_trap: checkpoint: got signal %d at t=%ld ms, rss=%ld KiB, state saved\n",
			       (int)got, now_ms() - start, rss_kib());
			return 0;
		}
		if (allocated < max) {
			long mib = allocated + step <= max ? step : max - allocated;
			size_t bytes = (size_t)mib << 20;
			char *p = malloc(bytes);
			if (!p) {
				fprintf(stderr, "soft_trap: malloc %ld MiB failed at %ld MiB\n", mib, allocated);
				return 1;
			}
			for (size_t off = 0; off < bytes; off += page)
				p[off] = 1;
			allocated += mib;
			printf("soft_trap: t=%ld ms allocated=%ld MiB rss=%ld KiB\n", now_ms() - start,
			       allocated, rss_kib());
		}
		/* A signal cuts the pause short (EINTR): the checkpoint follows at once. */
		struct timespec ts = { interval / 1000, (interval % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
}
