/* soft_trap STEP_MIB INTERVAL_MS MAX_MIB [trap|ignore]: an application that wants to be told
 * before it is killed for its memory. Every INTERVAL_MS it allocates STEP_MIB MiB more (pages
 * touched, so resident) and prints the time since it started and its RSS. In trap mode (the
 * default) SIGTERM or SIGUSR1 makes it write a "checkpoint" line and exit 0, as a real
 * application would save its state and leave; in ignore mode it ignores SIGTERM and SIGUSR1 and
 * keeps growing (the hard limit must then kill it). At MAX_MIB it holds its memory. */
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

int main(int argc, char **argv)
{
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
