/* cpu_hog SECONDS: burn SECONDS of CPU time (CLOCK_PROCESS_CPUTIME_ID, so time spent
 * descheduled does not count), report progress each CPU second, then CPU and wall time.
 * The wall/CPU ratio is what scheduling experiments (nice, cpu limits) measure. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	char *end;
	double seconds;

	if (argc != 2 || (errno = 0, seconds = strtod(argv[1], &end), errno) || *end ||
	    end == argv[1] || seconds < 0 || seconds > 1e6) {
		fprintf(stderr, "usage: cpu_hog SECONDS\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	double wall0 = now(CLOCK_MONOTONIC), cpu0 = now(CLOCK_PROCESS_CPUTIME_ID);
	double cpu = 0;
	long reported = 0;
	volatile unsigned long sink = 0;

	while (cpu < seconds) {
		/* Short bursts of work between clock reads keep the overshoot well under 1 ms. */
		for (int i = 0; i < 100000; i++)
			sink += (unsigned long)i * i;
		cpu = now(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
		if ((long)cpu > reported && (long)cpu <= (long)seconds) {
			reported = (long)cpu;
			printf("cpu_hog: %ld/%g s cpu\n", reported, seconds);
		}
	}
	printf("cpu_hog: done cpu=%.2fs wall=%.2fs\n", cpu, now(CLOCK_MONOTONIC) - wall0);
	return 0;
}
