/* memory_hog STEP_MIB INTERVAL_MS [MAX_MIB]: every INTERVAL_MS (0 = no pause) allocate
 * STEP_MIB MiB, write to every page so it is really resident, and print the RSS the kernel
 * reports. At MAX_MIB it stops growing and holds the memory, sleeping until killed: the
 * memory limit tests want a process that stays at a known size. Without MAX_MIB it grows
 * until the kernel (or the monitor) stops it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int parse_long(const char *s, long max, long *out)
{
	char *end;
	errno = 0;
	*out = strtol(s, &end, 10);
	return !errno && end != s && !*end && *out >= 0 && *out <= max;
}

/* Resident set in MiB from /proc/self/statm (second field, in pages). */
static long rss_mib(void)
{
	long size, resident = -1;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &size, &resident) != 2)
			resident = -1;
		fclose(f);
	}
	return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE) / (1024 * 1024);
}

int main(int argc, char **argv)
{
	long step, interval, max = -1;

	if (argc < 3 || argc > 4 || !parse_long(argv[1], 1L << 20, &step) || step == 0 ||
	    !parse_long(argv[2], 3600000L, &interval) ||
	    (argc == 4 && !parse_long(argv[3], 1L << 30, &max))) {
		fprintf(stderr, "usage: memory_hog STEP_MIB INTERVAL_MS [MAX_MIB]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	long page = sysconf(_SC_PAGESIZE), allocated = 0;
	while (max < 0 || allocated < max) {
		long mib = max < 0 || allocated + step <= max ? step : max - allocated;
		size_t bytes = (size_t)mib << 20;
		char *p = malloc(bytes);
		if (!p) {
			fprintf(stderr, "memory_hog: malloc %ld MiB failed at %ld MiB\n", mib, allocated);
			return 1;
		}
		for (size_t off = 0; off < bytes; off += page)
			p[off] = 1; /* touching each page makes it resident */
		allocated += mib;
		printf("memory_hog: allocated=%ld MiB rss=%ld MiB\n", allocated, rss_mib());
		if (interval) {
			struct timespec pause_ts = { interval / 1000, (interval % 1000) * 1000000L };
			nanosleep(&pause_ts, NULL);
		}
	}
	printf("memory_hog: holding %ld MiB\n", allocated);
	for (;;)
		pause();
}
