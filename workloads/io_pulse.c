/* io_pulse ITERATIONS SLEEP_MS [PATH]: each iteration writes 4 KiB to PATH (default
 * ./io_pulse.dat, falling back to /tmp when cwd is not writable), fsyncs it and sleeps
 * SLEEP_MS. An I/O-bound process: mostly asleep, little CPU, so the scheduler favours it
 * when it wakes. Prints a line per iteration and a summary with wall and CPU time. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
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
	long iterations, sleep_ms;
	const char *path = argc == 4 ? argv[3] : "io_pulse.dat";

	if (argc < 3 || argc > 4 || !parse_long(argv[1], 100000000L, &iterations) ||
	    !parse_long(argv[2], 3600000L, &sleep_ms)) {
		fprintf(stderr, "usage: io_pulse ITERATIONS SLEEP_MS [PATH]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 && argc == 3) {
		path = "/tmp/io_pulse.dat";
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	}
	if (fd < 0) {
		fprintf(stderr, "io_pulse: open %s: %s\n", path, strerror(errno));
		return 1;
	}

	char buf[4096];
	double wall0 = now(CLOCK_MONOTONIC), cpu0 = now(CLOCK_PROCESS_CPUTIME_ID);
	struct timespec pause = { sleep_ms / 1000, (sleep_ms % 1000) * 1000000L };

	for (long i = 1; i <= iterations; i++) {
		memset(buf, 'a' + (int)(i % 26), sizeof buf);
		double t0 = now(CLOCK_MONOTONIC);
		if (pwrite(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf || fsync(fd) < 0) {
			fprintf(stderr, "io_pulse: write %s: %s\n", path, strerror(errno));
			return 1;
		}
		printf("io_pulse: %ld/%ld write+fsync %.3f ms\n", i, iterations,
		       (now(CLOCK_MONOTONIC) - t0) * 1e3);
		if (i < iterations)
			nanosleep(&pause, NULL);
	}
	close(fd);
	unlink(path);
	printf("io_pulse: done iterations=%ld cpu=%.2fs wall=%.2fs\n", iterations,
	       now(CLOCK_PROCESS_CPUTIME_ID) - cpu0, now(CLOCK_MONOTONIC) - wall0);
	return 0;
}
