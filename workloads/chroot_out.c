/* Climbs out of its root as any process with CAP_SYS_CHROOT can (Docker's default set has it):
 * chroot into a subdirectory while the cwd stays above it, `..` past the new root, chroot there,
 * then prints what it finds at / (the names, sorted, one per line). In a container, that must be
 * the container's own root again, never a tree of the runtime's or the host's. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
    char dir[] = "/tmp/chroot_out.XXXXXX";
    if (!mkdtemp(dir) || chdir("/") != 0 || chroot(dir) != 0) {
        perror("chroot_out: chroot into a subdirectory");
        return 1;
    }
    for (int i = 0; i < 64; i++)
        if (chdir("..") != 0) {
            perror("chroot_out: chdir ..");
            return 1;
        }
    if (chroot(".") != 0) {
        perror("chroot_out: chroot .");
        return 1;
    }
    DIR *d = opendir("/");
    if (!d) {
        perror("chroot_out: opendir /");
        return 1;
    }
    char *names[4096];
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 4096;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            names[n++] = strdup(e->d_name);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++)
        puts(names[i]);
    return 0;
}
