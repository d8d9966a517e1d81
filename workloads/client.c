/* client HOST PORT [MESSAGE]: connect to an echo server (HOST is an IPv4 address or
 * "localhost"; static glibc cannot use NSS, so no name lookup), send MESSAGE (default
 * "hello from the host"), read the echo back and print it. Exit 0 only if the echo equals
 * the message, 1 otherwise. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char *end;
	long port = argc >= 3 ? strtol(argv[2], &end, 10) : -1;
	struct sockaddr_in addr = { .sin_family = AF_INET };

	if (argc < 3 || argc > 4 || *end || end == argv[2] || port < 1 || port > 65535) {
		fprintf(stderr, "usage: client HOST PORT [MESSAGE]\n");
		return 2;
	}
	const char *host = strcmp(argv[1], "localhost") ? argv[1] : "127.0.0.1";
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "client: %s is not an IPv4 address\n", argv[1]);
		return 2;
	}
	addr.sin_port = htons(port);
	const char *msg = argc == 4 ? argv[3] : "hello from the host";
	size_t len = strlen(msg);

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval timeout = { 5, 0 }; /* a dead server must not hang a test */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		fprintf(stderr, "client: connect %s:%ld: %s\n", argv[1], port, strerror(errno));
		return 1;
	}
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, msg + off, len - off);
		if (w < 0) {
			fprintf(stderr, "client: send: %s\n", strerror(errno));
			return 1;
		}
		off += w;
	}
	shutdown(fd, SHUT_WR); /* the server echoes until EOF, then closes */

	char *got = malloc(len + 1);
	size_t n = 0;
	ssize_t r;
	while (n < len && (r = read(fd, got + n, len - n)) > 0)
		n += r;
	got[n] = '\0';
	printf("%s\n", got);
	if (n != len || memcmp(got, msg, len)) {
		fprintf(stderr, "client: echo differs (%zu of %zu bytes)\n", n, len);
		return 1;
	}
	return 0;
}
