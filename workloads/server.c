/* server PORT: TCP echo server on 0.0.0.0:PORT. One forked child per client, so a slow
 * client does not hold up the next; children are reaped by the kernel (SIGCHLD ignored).
 * Prints "listening on PORT" once the socket accepts connections. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void echo(int fd)
{
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, n - off);
			if (w < 0)
				return;
			off += w;
		}
	}
}

int main(int argc, char **argv)
{
	char *end;
	long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;

	if (argc != 2 || *end || end == argv[1] || port < 1 || port > 65535) {
		fprintf(stderr, "usage: server PORT\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGCHLD, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);

	int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port),
				    .sin_addr.s_addr = htonl(INADDR_ANY) };
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 64) < 0) {
		fprintf(stderr, "server: port %ld: %s\n", port, strerror(errno));
		return 1;
	}
	printf("listening on %ld\n", port);

	for (;;) {
		struct sockaddr_in peer;
		socklen_t len = sizeof peer;
		int fd = accept(lfd, (struct sockaddr *)&peer, &len);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "server: accept: %s\n", strerror(errno));
			return 1;
		}
		char who[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &peer.sin_addr, who, sizeof who);
		printf("server: connection from %s:%d\n", who, ntohs(peer.sin_port));
		pid_t pid = fork();
		if (pid == 0) {
			close(lfd);
			echo(fd);
			_exit(0);
		}
		if (pid < 0) /* out of processes (pids limit): serve this one inline */
			echo(fd);
		close(fd);
	}
}
