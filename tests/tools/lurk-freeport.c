/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prints a TCP port on 127.0.0.1 that is free now, for tests that start
 * servers. It is drawn at random BELOW the kernel's ephemeral range: a port
 * from that range can be taken, between this check and the server's bind,
 * as the source port of any outgoing connection, and the parallel tests
 * make thousands. Random, so that parallel tests rarely draw the same one.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LURK_PORT_MIN 10000

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
    for (int i = 0; i < 200 && span > 0; i++) {
        unsigned int port = LURK_PORT_MIN + (unsigned int)rand_r(&seed) % span;

        if (bindable(port)) {
            printf("%u\n", port);
            return 0;
        }
    }
    fprintf(stderr, "lurk-freeport: no free port below %u\n", low);
    return 1;
}
