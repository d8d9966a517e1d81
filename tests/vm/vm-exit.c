/* vm-exit CODE: powers the guest off through QEMU's isa-debug-exit device (port 0xf4),
 * which makes QEMU exit with status (CODE << 1) | 1. There is no /dev/port in the guest,
 * hence ioperm + outl. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/io.h>

int main(int argc, char **argv)
{
	unsigned int code = argc > 1 ? (unsigned int)strtoul(argv[1], NULL, 0) : 0;

	if (ioperm(0xf4, 4, 1)) {
		perror("vm-exit: ioperm");
		return 1;
	}
	outl(code, 0xf4);
	fprintf(stderr, "vm-exit: still running (no isa-debug-exit device?)\n");
	return 1;
}
