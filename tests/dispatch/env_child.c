/* A small workload for the environment-variable tests: allocates over
 * every tier, frees, optionally forks a child (argv[1] = "fork"), or
 * closes stderr and writes argv[2]'s file through the fd 2 it gets back
 * (argv[1] = "reuse-stderr": the exit reports must not land in it). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    void *v[400];
    for (int i = 0; i < 400; i++) {
        v[i] = malloc((size_t)(i % 40) * 97 + (i == 399 ? (2 << 20) : 1));
        memset(v[i], 1, 8);
    }
    for (int i = 0; i < 400; i += 2)
        free(v[i]);
    if (argc > 1 && strcmp(argv[1], "fork") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            free(malloc(10));
            exit(0);
        }
        waitpid(pid, NULL, 0);
    }
    for (int i = 1; i < 400; i += 2)
        free(v[i]);
    if (argc > 2 && strcmp(argv[1], "reuse-stderr") == 0) {
        close(2);
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd != 2 || write(fd, "PAYLOAD\n", 8) != 8)
            return 1;
    }
    return 0;
}
