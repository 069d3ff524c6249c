/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prints a TCP port on 127.0.0.1 that is free now, for tests that start
 * servers. It is drawn at random BELOW the kernel's ephemeral range: a port
 * from that range can be taken, between this check and the server's bind,
 * as the source port of any outgoing connection, and the parallel tests
 * make thousands. Random, and reserved: a port is handed out once in
 * LURK_PORT_HOLD_S across all tests (a file per port in a shared directory,
 * created exclusively), because two tests that draw the same port both see
 * "something listens" and one of them talks to the other's server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LURK_PORT_MIN    10000
#define LURK_PORT_HOLD_S 1800 /* longer than the whole suite */
#define LURK_PORT_DIR    "/tmp/lurk-ports"

/* 1 if this call reserved the port; a reservation older than the hold is taken over. */
static int reserve(unsigned int port)
{
    char path[64];
    struct stat st;
    int fd;

    snprintf(path, sizeof(path), LURK_PORT_DIR "/%u", port);
    for (int i = 0; i < 2; i++) {
        if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644)) >= 0) {
            close(fd);
            return 1;
        }
        if (errno != EEXIST || stat(path, &st) != 0 || time(NULL) - st.st_mtime < LURK_PORT_HOLD_S
            || unlink(path) != 0)
            return 0;
    }
    return 0;
}

static int bindable(unsigned int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((unsigned short)port);
    ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static unsigned int ephemeral_low(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    unsigned int low = 32768, high;

    if (f != NULL) {
        if (fscanf(f, "%u %u", &low, &high) != 2)
            low = 32768;
        fclose(f);
    }
    return low;
}

int main(void)
{
    unsigned int low = ephemeral_low(), span, seed;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    seed = (unsigned int)ts.tv_nsec ^ ((unsigned int)getpid() << 16);
    span = low > LURK_PORT_MIN + 1000 ? low - LURK_PORT_MIN : 0;
    /* Shared by every user's tests: world-writable and sticky, like /tmp. */
    if (mkdir(LURK_PORT_DIR, 01777) == 0)
        chmod(LURK_PORT_DIR, 01777);
    for (int i = 0; i < 200 && span > 0; i++) {
        unsigned int port = LURK_PORT_MIN + (unsigned int)rand_r(&seed) % span;

        if (bindable(port) && reserve(port)) {
            printf("%u\n", port);
            return 0;
        }
    }
    fprintf(stderr, "lurk-freeport: no free port below %u\n", low);
    return 1;
}
