/*
 * gsocket's load generator: drives one echo server over TCP from a single
 * thread (epoll) and checks every byte that comes back.
 *
 *   loadgen -m MODE -H HOST -p PORT -c CONNS -s SIZE -t SECONDS [-w WARMUP]
 *           [-P SERVER_PID] [-W BULK_WINDOW] [-a MAX_CONNECTING] [-f]
 *
 * MODE is one of
 *   pingpong  every connection sends SIZE bytes, waits for all of them to come
 *             back, and sends the next message;
 *   bulk      every connection keeps up to BULK_WINDOW bytes in flight, sent in
 *             SIZE-byte writes;
 *   connect   CONNS loops of connect, SIZE-byte round trip, close;
 *   idle      open CONNS connections (one SIZE-byte round trip each), print a
 *             READY line, hold them SECONDS, then one more round trip each.
 *
 * What is sent is a byte stream that differs per connection (a 251-byte cycle
 * starting at a per-connection offset), so an echo that loses, reorders,
 * duplicates or crosses bytes between connections is caught: it counts in
 * `mismatch` (and `err`) and closes that connection.
 *
 * -f makes every SIZE bytes of the stream a netpack frame: a 2-byte big-endian
 * length (SIZE - 2), then SIZE - 2 bytes of the cycle. A netpack echo (a gate)
 * answers each frame with the same frame; a byte echo answers it unchanged too.
 *
 * The result is one line of key=value fields on stdout.  `lg_cpu` is this
 * process's CPU in the measured window and `srv_cpu` the server's (from
 * /proc/PID/stat with -P); 100 means one core.  Latency percentiles come from
 * a uniform random sample of at most SAMPLE_CAP round trips.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define CYCLE 251                 /* pattern period: prime, so it never lines up with SIZE */
#define RECV_CHUNK (256 * 1024)   /* largest single recv */
#define SAMPLE_CAP (1 << 20)      /* latency samples kept */
#define SETUP_LIMIT_S 120.0       /* connection setup gives up after this */
#define FINAL_LIMIT_S 30.0        /* idle: the last round trip gives up after this */
#define LOOPBACK_SOURCES 16       /* connect mode spreads over 127.0.0.1..16 (ephemeral ports) */

typedef enum { MODE_PINGPONG, MODE_BULK, MODE_CONNECT, MODE_IDLE } run_mode_t;
typedef enum { STAGE_SETUP, STAGE_WARMUP, STAGE_MEASURE, STAGE_HOLD, STAGE_FINAL, STAGE_DONE } stage_t;
typedef enum { PEER_UNUSED, PEER_CONNECTING, PEER_ACTIVE, PEER_RESTING, PEER_DEAD } peer_state_t;

typedef struct {
    int fd;
    peer_state_t state;
    uint32_t interest;   /* events registered with epoll */
    int ready;           /* has completed one round trip */
    unsigned origin;     /* where this connection's pattern starts */
    uint64_t out;        /* bytes of the stream sent so far */
    uint64_t in;         /* bytes of the stream received (and checked) so far */
    uint64_t goal;       /* pingpong/connect/idle: stream position that ends the current message */
    uint64_t started_ns; /* start of the current round trip (connect: of the cycle) */
} peer_t;

static struct {
    run_mode_t mode;
    const char *host;
    int port, conns, server_pid, max_connecting;
    size_t size;
    double seconds, warmup;
    uint64_t window;
    int frames;
} opt = {MODE_PINGPONG, "127.0.0.1", 0, 1, 0, 64, 64, 5.0, 0.5, 1 << 20, 0};

static int epfd;
static peer_t *peers;
static unsigned char *pattern; /* CYCLE + largest read or write, so any window is contiguous */
static unsigned char *inbox;
static struct sockaddr_in target;
static stage_t stage = STAGE_SETUP;

static int connecting, ready_count, final_waiting;
static uint64_t messages, bytes_echoed, checked, errors, connect_errors, mismatches;
static uint64_t alive_at_end, closed_while_idle;
static const char *last_error = "";

static uint32_t *samples; /* latency in units of 100 ns */
static uint64_t seen, kept, latency_sum_ns, latency_max_ns, rng = 0x9e3779b97f4a7c15ull;

static uint64_t clock_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static uint64_t next_random(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* reservoir sampling: every round trip has the same chance to be kept */
static void record_latency(uint64_t ns) {
    uint32_t units = ns / 100 > UINT32_MAX ? UINT32_MAX : (uint32_t)(ns / 100);
    latency_sum_ns += ns;
    if (ns > latency_max_ns) latency_max_ns = ns;
    seen++;
    if (kept < SAMPLE_CAP) {
        samples[kept++] = units;
    } else {
        uint64_t slot = next_random() % seen;
        if (slot < SAMPLE_CAP) samples[slot] = units;
    }
}

static int by_value(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* percentile (0..1) of the sorted sample, in microseconds */
static double percentile_us(double fraction) {
    if (kept == 0) return 0.0;
    uint64_t index = (uint64_t)(fraction * (double)(kept - 1) + 0.5);
    return samples[index] / 10.0;
}

static double own_cpu_s(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
           (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

/* user + system CPU seconds of another process, -1 when it cannot be read */
static double process_cpu_s(int pid) {
    char path[48], text[2048];
    if (pid <= 0) return -1;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *file = fopen(path, "r");
    if (!file) return -1;
    size_t length = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[length] = '\0';
    char *field = strrchr(text, ')'); /* the command name may hold spaces */
    if (!field) return -1;
    /* fields after the name start at 3 (state); utime and stime are 14 and 15 */
    unsigned long long ticks[2] = {0, 0};
    int number = 3;
    for (char *word = strtok(field + 1, " "); word; word = strtok(NULL, " "), number++) {
        if (number == 14) ticks[0] = strtoull(word, NULL, 10);
        if (number == 15) { ticks[1] = strtoull(word, NULL, 10); break; }
    }
    if (number != 15) return -1;
    return (double)(ticks[0] + ticks[1]) / (double)sysconf(_SC_CLK_TCK);
}

static void want(peer_t *p, uint32_t events) {
    if (p->interest == events) return;
    struct epoll_event change = {.events = events, .data.ptr = p};
    epoll_ctl(epfd, EPOLL_CTL_MOD, p->fd, &change);
    p->interest = events;
}

static const unsigned char *stream_at(const peer_t *p, uint64_t position) {
    return pattern + (p->origin + position) % CYCLE;
}

static unsigned char *framed; /* -f: the stream's bytes with the frame headers put in */

/* LENGTH bytes of the stream from POSITION (at most RECV_CHUNK) */
static const unsigned char *stream_bytes(const peer_t *p, uint64_t position, size_t length) {
    const unsigned char *window = stream_at(p, position);
    if (!opt.frames) return window;
    memcpy(framed, window, length);
    uint64_t body = opt.size - 2;
    for (uint64_t frame = position - position % opt.size; frame < position + length; frame += opt.size) {
        for (uint64_t at = frame; at < frame + 2; at++) {
            if (at >= position && at < position + length)
                framed[at - position] = at == frame ? (unsigned char)(body >> 8) : (unsigned char)(body & 0xff);
        }
    }
    return framed;
}

static int open_peer(peer_t *p, unsigned index);

/* a connection ends: by failure (counted) or at the end of a connect cycle */
static void retire(peer_t *p, int failed) {
    if (p->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, p->fd, NULL);
        close(p->fd);
        p->fd = -1;
    }
    if (p->state == PEER_CONNECTING) connecting--;
    if (opt.mode == MODE_IDLE && stage == STAGE_FINAL && p->goal > p->in) final_waiting--;
    p->state = PEER_DEAD;
    if (failed && stage == STAGE_SETUP && !p->ready) connect_errors++;
    else if (failed) errors++;
    if (opt.mode == MODE_CONNECT && stage < STAGE_DONE) p->state = PEER_UNUSED; /* reopened by the loop */
}

static void fail(peer_t *p, const char *why) {
    last_error = why;
    retire(p, 1);
}

/* write what the current goal (or the bulk window) allows; 0 ok, -1 the peer is gone */
static int push(peer_t *p) {
    uint64_t limit = opt.mode == MODE_BULK ? p->in + opt.window : p->goal;
    while (p->out < limit) {
        uint64_t room = limit - p->out;
        size_t length = room < opt.size ? (size_t)room : opt.size;
        ssize_t sent = send(p->fd, stream_bytes(p, p->out, length), length, MSG_NOSIGNAL);
        if (sent > 0) { p->out += (uint64_t)sent; continue; }
        if (sent < 0 && (errno == EAGAIN || errno == EINTR)) break;
        fail(p, sent < 0 ? strerror(errno) : "send returned 0");
        return -1;
    }
    want(p, p->out < limit ? EPOLLIN | EPOLLOUT : EPOLLIN);
    return 0;
}

static void begin_message(peer_t *p, uint64_t now) {
    p->goal = p->in + opt.size;
    p->started_ns = now;
    push(p);
}

static void mark_ready(peer_t *p) {
    if (p->ready) return;
    p->ready = 1;
    ready_count++;
}

/* the echo of one whole message is in */
static void message_done(peer_t *p, uint64_t now) {
    int counted = stage == STAGE_MEASURE;
    switch (opt.mode) {
    case MODE_PINGPONG:
        mark_ready(p);
        if (counted) { messages++; bytes_echoed += opt.size; record_latency(now - p->started_ns); }
        begin_message(p, now);
        break;
    case MODE_CONNECT:
        if (counted) { messages++; bytes_echoed += opt.size; record_latency(now - p->started_ns); }
        mark_ready(p);
        retire(p, 0);
        break;
    case MODE_IDLE:
        mark_ready(p);
        if (stage == STAGE_FINAL) { alive_at_end++; final_waiting--; }
        p->state = PEER_RESTING;
        want(p, EPOLLIN);
        break;
    case MODE_BULK:
        break;
    }
}

/* read and check what arrived; 0 ok, -1 the peer is gone */
static int pull(peer_t *p, uint64_t now) {
    for (;;) {
        size_t room = RECV_CHUNK;
        if (opt.mode != MODE_BULK) {
            if (p->goal <= p->in) room = 1; /* nothing expected: any byte is wrong, one is enough */
            else if (p->goal - p->in < room) room = (size_t)(p->goal - p->in);
        }
        ssize_t got = recv(p->fd, inbox, room, 0);
        if (got > 0) {
            if (p->goal <= p->in && opt.mode != MODE_BULK) { mismatches++; fail(p, "unexpected bytes"); return -1; }
            if (memcmp(inbox, stream_bytes(p, p->in, (size_t)got), (size_t)got) != 0) {
                mismatches++;
                fail(p, "echoed bytes differ from what was sent");
                return -1;
            }
            p->in += (uint64_t)got;
            checked += (uint64_t)got;
            if (opt.mode == MODE_BULK) {
                if (stage == STAGE_MEASURE) bytes_echoed += (uint64_t)got;
                if ((size_t)got < room) return 0;
                continue;
            }
            if (p->in == p->goal) {
                message_done(p, now);
                return p->state == PEER_DEAD || p->state == PEER_UNUSED ? -1 : 0;
            }
            if ((size_t)got < room) return 0;
            continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
        if (opt.mode == MODE_IDLE && p->state == PEER_RESTING && stage != STAGE_FINAL) closed_while_idle++;
        fail(p, got < 0 ? strerror(errno) : "server closed the connection");
        return -1;
    }
}

static void on_connected(peer_t *p, uint64_t now) {
    int problem = 0;
    socklen_t length = sizeof problem;
    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &problem, &length);
    if (problem) { fail(p, strerror(problem)); return; }
    connecting--;
    p->state = PEER_ACTIVE;
    if (opt.mode == MODE_BULK) {
        mark_ready(p);
        push(p);
        return;
    }
    uint64_t cycle_start = p->started_ns;
    begin_message(p, now);
    if (opt.mode == MODE_CONNECT) p->started_ns = cycle_start; /* the cycle includes the connect */
}

static void on_event(peer_t *p, uint32_t events, uint64_t now) {
    if (p->state == PEER_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(p, now);
        return;
    }
    if (p->state != PEER_ACTIVE && p->state != PEER_RESTING) return;
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && pull(p, now) < 0) return;
    /* bulk: what was read opened the window again */
    if (((events & EPOLLOUT) || opt.mode == MODE_BULK) && p->state == PEER_ACTIVE) push(p);
}

static int open_peer(peer_t *p, unsigned index) {
    static unsigned next_source;
    memset(p, 0, sizeof *p);
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    p->origin = (index * 37u) % CYCLE;
    if (p->fd < 0) { p->state = PEER_DEAD; connect_errors++; last_error = strerror(errno); return -1; }
    int on = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (opt.mode == MODE_CONNECT && ntohl(target.sin_addr.s_addr) >> 24 == 127) {
        /* each cycle leaves a TIME_WAIT port behind: spread them over several sources */
        struct sockaddr_in source = {.sin_family = AF_INET};
        source.sin_addr.s_addr = htonl(0x7f000001u + next_source++ % LOOPBACK_SOURCES);
        setsockopt(p->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
        bind(p->fd, (struct sockaddr *)&source, sizeof source);
    }
    if (connect(p->fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
        connect_errors++;
        last_error = strerror(errno);
        close(p->fd);
        p->fd = -1;
        p->state = opt.mode == MODE_CONNECT ? PEER_UNUSED : PEER_DEAD;
        return -1;
    }
    p->state = PEER_CONNECTING;
    p->interest = EPOLLOUT;
    p->started_ns = clock_ns();
    struct epoll_event first = {.events = EPOLLOUT, .data.ptr = p};
    epoll_ctl(epfd, EPOLL_CTL_ADD, p->fd, &first);
    connecting++;
    return 0;
}

static void allow_files(int count) {
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    rlim_t needed = (rlim_t)count + 64;
    if (limit.rlim_cur >= needed) return;
    limit.rlim_cur = needed <= limit.rlim_max ? needed : limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < needed)
        fprintf(stderr, "loadgen: only %lu file descriptors allowed\n", (unsigned long)limit.rlim_cur);
}

static void usage(const char *why) {
    fprintf(stderr, "loadgen: %s\nusage: loadgen -m pingpong|bulk|connect|idle -H host -p port "
                    "-c conns -s size -t seconds [-w warmup] [-P server_pid] [-W window] "
                    "[-a max_connecting] [-f]\n", why);
    exit(2);
}

static void parse(int argc, char **argv) {
    int flag;
    while ((flag = getopt(argc, argv, "m:H:p:c:s:t:w:P:W:a:f")) != -1) {
        switch (flag) {
        case 'm':
            if (!strcmp(optarg, "pingpong")) opt.mode = MODE_PINGPONG;
            else if (!strcmp(optarg, "bulk")) opt.mode = MODE_BULK;
            else if (!strcmp(optarg, "connect")) opt.mode = MODE_CONNECT;
            else if (!strcmp(optarg, "idle")) opt.mode = MODE_IDLE;
            else usage("unknown mode");
            break;
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'c': opt.conns = atoi(optarg); break;
        case 's': opt.size = strtoul(optarg, NULL, 10); break;
        case 't': opt.seconds = atof(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'P': opt.server_pid = atoi(optarg); break;
        case 'W': opt.window = strtoull(optarg, NULL, 10); break;
        case 'a': opt.max_connecting = atoi(optarg); break;
        case 'f': opt.frames = 1; break;
        default: usage("unknown option");
        }
    }
    if (opt.port <= 0 || opt.port > 65535) usage("-p port is required");
    if (opt.conns < 1 || opt.size < 1 || opt.size > RECV_CHUNK) usage("bad -c or -s");
    if (opt.max_connecting < 1) usage("bad -a");
    if (opt.frames && (opt.size < 3 || opt.size - 2 > 65535)) usage("-f needs 3 <= size <= 65537");
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &target.sin_addr) != 1) usage("-H takes an IPv4 address");
}

static const char *mode_name(void) {
    static const char *names[] = {"pingpong", "bulk", "connect", "idle"};
    return names[opt.mode];
}

int main(int argc, char **argv) {
    parse(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    allow_files(opt.conns);
    pattern = malloc(CYCLE + RECV_CHUNK);
    for (size_t i = 0; i < CYCLE + RECV_CHUNK; i++) pattern[i] = (unsigned char)(i % CYCLE);
    inbox = malloc(RECV_CHUNK);
    framed = malloc(RECV_CHUNK);
    samples = malloc(sizeof *samples * SAMPLE_CAP);
    peers = calloc((size_t)opt.conns, sizeof *peers);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!pattern || !inbox || !framed || !samples || !peers || epfd < 0) { perror("loadgen"); return 1; }
    for (int i = 0; i < opt.conns; i++) { peers[i].fd = -1; peers[i].state = PEER_UNUSED; }

    int opened = 0;
    uint64_t begun = clock_ns(), stage_began = begun, window_start = 0, window_end = 0;
    double setup_s = 0, cpu_start = 0, cpu_end = 0, server_start = -1, server_end = -1;
    struct epoll_event events[512];

    while (stage != STAGE_DONE) {
        uint64_t now = clock_ns();
        double in_stage = (now - stage_began) / 1e9;
        /* open connections, at most max_connecting at a time */
        if (stage == STAGE_SETUP || opt.mode == MODE_CONNECT) {
            int limit = opt.mode == MODE_CONNECT ? opt.conns : opt.max_connecting;
            for (int i = 0; i < opt.conns && connecting < limit; i++) {
                if (peers[i].state != PEER_UNUSED) continue;
                if (i >= opened) opened = i + 1;
                open_peer(&peers[i], (unsigned)i);
                if (connect_errors > 1000 && stage == STAGE_SETUP) break;
            }
        }
        switch (stage) {
        case STAGE_SETUP: {
            int settled = opened == opt.conns && (opt.mode == MODE_CONNECT || connecting == 0);
            if (opt.mode != MODE_CONNECT) {
                int pending = 0;
                for (int i = 0; i < opt.conns; i++) pending += peers[i].state == PEER_ACTIVE && !peers[i].ready;
                settled = settled && pending == 0;
            }
            if (settled || in_stage > SETUP_LIMIT_S) {
                if (!settled) fprintf(stderr, "loadgen: setup took too long (%d ready)\n", ready_count);
                setup_s = in_stage;
                stage = opt.mode == MODE_IDLE ? STAGE_HOLD : STAGE_WARMUP;
                stage_began = now;
                if (opt.mode == MODE_IDLE)
                    printf("READY conns=%d confirmed=%d setup_s=%.2f errors=%llu\n", opt.conns,
                           ready_count, setup_s, (unsigned long long)connect_errors);
            }
            break;
        }
        case STAGE_WARMUP:
            if (in_stage >= opt.warmup) {
                stage = STAGE_MEASURE;
                stage_began = window_start = now;
                cpu_start = own_cpu_s();
                server_start = process_cpu_s(opt.server_pid);
            }
            break;
        case STAGE_MEASURE:
            if (in_stage >= opt.seconds) {
                window_end = now;
                cpu_end = own_cpu_s();
                server_end = process_cpu_s(opt.server_pid);
                stage = STAGE_DONE;
            }
            break;
        case STAGE_HOLD:
            if (in_stage >= opt.seconds) {
                stage = STAGE_FINAL;
                stage_began = window_start = now;
                for (int i = 0; i < opt.conns; i++) {
                    if (peers[i].state != PEER_RESTING) continue;
                    peers[i].state = PEER_ACTIVE;
                    final_waiting++;
                    begin_message(&peers[i], now);
                }
            }
            break;
        case STAGE_FINAL:
            if (final_waiting <= 0 || in_stage > FINAL_LIMIT_S) { window_end = now; stage = STAGE_DONE; }
            break;
        case STAGE_DONE:
            break;
        }
        if (stage == STAGE_DONE) break;
        int count = epoll_wait(epfd, events, 512, 2);
        if (count < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
        now = clock_ns();
        for (int i = 0; i < count; i++) on_event(events[i].data.ptr, events[i].events, now);
    }

    double window_s = (window_end - window_start) / 1e9;
    uint64_t failures = errors + connect_errors;
    printf("mode=%s conns=%d size=%zu", mode_name(), opt.conns, opt.size);
    if (opt.mode == MODE_IDLE) {
        printf(" held_s=%.1f setup_s=%.2f opened=%d alive=%llu closed_by_server=%llu final_ping_s=%.3f",
               opt.seconds, setup_s, ready_count, (unsigned long long)alive_at_end,
               (unsigned long long)closed_while_idle, window_s);
    } else {
        if (opt.server_pid && server_start >= 0 && server_end >= 0 && window_s > 0)
            printf(" srv_cpu=%.0f", 100.0 * (server_end - server_start) / window_s);
        printf(" secs=%.2f", window_s);
        if (opt.mode != MODE_BULK) {
            qsort(samples, kept, sizeof *samples, by_value);
            printf(" msgs=%llu msgs_s=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f avg_us=%.1f max_us=%.1f",
                   (unsigned long long)messages, window_s > 0 ? messages / window_s : 0.0,
                   percentile_us(0.50), percentile_us(0.90), percentile_us(0.99),
                   seen ? latency_sum_ns / 1e3 / seen : 0.0, latency_max_ns / 1e3);
        }
        printf(" MB_s=%.2f lg_cpu=%.0f setup_s=%.2f", window_s > 0 ? bytes_echoed / window_s / 1e6 : 0.0,
               window_s > 0 ? 100.0 * (cpu_end - cpu_start) / window_s : 0.0, setup_s);
    }
    printf(" checked_bytes=%llu mismatch=%llu conn_err=%llu err=%llu last_err=\"%s\"\n",
           (unsigned long long)checked, (unsigned long long)mismatches,
           (unsigned long long)connect_errors, (unsigned long long)errors, failures ? last_error : "");
    return 0;
}
