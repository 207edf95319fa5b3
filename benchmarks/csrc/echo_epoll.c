/*
 * The benchmarks' ceiling: a single-threaded C echo server on epoll, the most
 * one core can echo, so the report can show what the load generator drives
 * when the server costs next to nothing.
 *
 *   echo_epoll [--host 127.0.0.1] --port PORT
 *
 * Each readable connection is read into one shared buffer and written straight
 * back.  Bytes the kernel does not take at once are copied aside; while a
 * connection has queued bytes it is not read (so a client that does not read
 * cannot grow the server's memory) and waits for EPOLLOUT instead.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK 65536

typedef struct {
    int fd;
    unsigned char *buf;     /* NULL while nothing waits to be sent */
    size_t queued, written; /* bytes still to send: buf[written, queued) */
} client_t;

static int epfd;
static unsigned char incoming[CHUNK]; /* every recv lands here first */

static void drop(client_t *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->buf);
    free(c);
}

static void watch(client_t *c, uint32_t events, int op) {
    struct epoll_event change = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, op, c->fd, &change);
}

/* send what is queued; 1 when all of it went, 0 when the kernel is full, -1 on error */
static int flush(client_t *c) {
    while (c->written < c->queued) {
        ssize_t n = send(c->fd, c->buf + c->written, c->queued - c->written, MSG_NOSIGNAL);
        if (n > 0) { c->written += (size_t)n; continue; }
        if (n < 0 && errno == EAGAIN) return 0;
        if (n < 0 && errno == EINTR) continue;
        return -1;
    }
    free(c->buf);
    c->buf = NULL;
    c->queued = c->written = 0;
    return 1;
}

static void serve(client_t *c, uint32_t events) {
    if (c->queued) { /* waiting for EPOLLOUT */
        int state = flush(c);
        if (state < 0) { drop(c); return; }
        if (state == 0) return;
        watch(c, EPOLLIN, EPOLL_CTL_MOD);
        return;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    ssize_t n = recv(c->fd, incoming, CHUNK, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) { drop(c); return; }
    if (n < 0) return;
    ssize_t sent = send(c->fd, incoming, (size_t)n, MSG_NOSIGNAL);
    if (sent == n) return; /* the usual case: nothing to keep */
    if (sent < 0 && errno != EAGAIN && errno != EINTR) { drop(c); return; }
    if (sent < 0) sent = 0;
    c->buf = malloc((size_t)(n - sent));
    if (!c->buf) { drop(c); return; }
    memcpy(c->buf, incoming + sent, (size_t)(n - sent));
    c->queued = (size_t)(n - sent);
    c->written = 0;
    watch(c, EPOLLOUT, EPOLL_CTL_MOD);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    }
    if (port <= 0) { fprintf(stderr, "usage: echo_epoll [--host ADDR] --port PORT\n"); return 2; }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) { limit.rlim_cur = limit.rlim_max; setrlimit(RLIMIT_NOFILE, &limit); }

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) { fprintf(stderr, "echo_epoll: bad --host\n"); return 2; }
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 4096) < 0) {
        perror("echo_epoll: listen");
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event accepting = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &accepting);
    printf("echo_epoll listening on %s:%d\n", host, port);
    fflush(stdout);

    struct epoll_event events[256];
    for (;;) {
        int count = epoll_wait(epfd, events, 256, -1);
        if (count < 0) {
            if (errno == EINTR) continue;
            perror("echo_epoll: epoll_wait");
            return 1;
        }
        for (int i = 0; i < count; i++) {
            if (events[i].data.ptr) { serve(events[i].data.ptr, events[i].events); continue; }
            for (;;) { /* accept everything that is waiting */
                int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) break;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
                client_t *c = malloc(sizeof *c);
                if (!c) { close(fd); continue; }
                c->fd = fd;
                c->buf = NULL;
                c->queued = c->written = 0;
                watch(c, EPOLLIN, EPOLL_CTL_ADD);
            }
        }
    }
}
