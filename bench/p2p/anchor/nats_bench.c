/* The NATS anchor of the pubsub benchmark (bench/p2p/run.sh): the same
 * shape as `bzzz_p2p_bench pubsub`, against a nats-server on 127.0.0.1.
 *
 *   nats_bench --port P [--subscribers 2] [--seconds 10] [--size 1024]
 *              [--latency-messages 20000] [--rate R]
 *
 * One publisher (this process) and --subscribers forked subscriber
 * processes, each with its own connection (NATS C client, unlimited pending
 * limits so that the client drops nothing). Phases: saturation (publish as
 * fast as the client takes messages for --seconds; delivered messages/s of
 * the slower subscriber over its receive span), latency paced at half that
 * (or --rate; publish -> subscriber callback, the publish time travels in
 * the payload), 3 s at 80% (loss), CPU per delivered message (clients and,
 * with --server-pid, the server). Messages are
 * not signed (NATS has no per-message signatures). Prints JSON lines with
 * "system":"nats".
 */
#include <nats/nats.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char* kSubject = "bench.pubsub";

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double cpu_seconds(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds of another process (the server), from /proc/PID/stat. */
static double proc_cpu(int pid) {
  if (pid <= 0) return 0;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char* p = strrchr(buf, ')');
  unsigned long long ut = 0, st = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return 0;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int arg(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (strcmp(argv[i], name) == 0) return atoi(argv[i + 1]);
  return fallback;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

/* ---- subscriber process ---- */

#define MAX_LAT 200000
static volatile uint64_t g_sat, g_lat, g_loss;
static volatile int64_t g_first, g_last;
static double g_lat_ms[MAX_LAT];

static void on_msg(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure) {
  (void)nc, (void)sub, (void)closure;
  const char* data = natsMsg_GetData(msg);
  int64_t now = now_us();
  if (natsMsg_GetDataLength(msg) >= 9) {
    int64_t sent;
    memcpy(&sent, data + 1, 8);
    if (data[0] == 's') {
      if (g_first == 0) g_first = now;
      g_last = now;
      g_sat++;
    } else if (data[0] == 'l') {
      if (g_lat < MAX_LAT) g_lat_ms[g_lat] = (double)(now - sent) / 1000.0;
      g_lat++;
    } else if (data[0] == 'o') {
      g_loss++;
    }
  }
  natsMsg_Destroy(msg);
}

static void read_line(int fd, char* buf, size_t n) {
  size_t i = 0;
  char c;
  while (i + 1 < n && read(fd, &c, 1) == 1 && c != '\n') buf[i++] = c;
  buf[i] = 0;
}

static void write_line(int fd, const char* s) {
  (void)!write(fd, s, strlen(s));
  (void)!write(fd, "\n", 1);
}

static void subscriber(int port, int cmd, int res) {
  char url[64];
  snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
  natsConnection* nc = NULL;
  natsSubscription* sub = NULL;
  if (natsConnection_ConnectTo(&nc, url) != NATS_OK || natsConnection_Subscribe(&sub, nc, kSubject, on_msg, NULL) != NATS_OK) {
    write_line(res, "error");
    _exit(1);
  }
  natsSubscription_SetPendingLimits(sub, -1, -1);
  natsConnection_Flush(nc);
  write_line(res, "ready");
  double mark = cpu_seconds();
  char line[64], out[256];
  for (;;) {
    read_line(cmd, line, sizeof line);
    if (strcmp(line, "mark") == 0) {
      mark = cpu_seconds();
      write_line(res, "ok");
    } else if (strcmp(line, "stats") == 0) {
      int64_t dropped = 0;
      natsSubscription_GetDropped(sub, &dropped);
      snprintf(out, sizeof out, "%llu %llu %llu %lld %lld %.4f", (unsigned long long)g_sat, (unsigned long long)g_lat,
               (unsigned long long)g_loss, (long long)dropped, (long long)(g_last - g_first), cpu_seconds() - mark);
      write_line(res, out);
    } else if (strcmp(line, "latency") == 0) {
      size_t n = g_lat < MAX_LAT ? g_lat : MAX_LAT;
      qsort(g_lat_ms, n, sizeof(double), cmp_double);
      snprintf(out, sizeof out, "%zu %.4f %.4f", n, n ? g_lat_ms[n / 2] : 0, n ? g_lat_ms[(size_t)(n * 0.99)] : 0);
      g_lat = 0;
      write_line(res, out);
    } else {
      break;
    }
  }
  _exit(0);
}

/* ---- publisher ---- */

typedef struct {
  pid_t pid;
  int cmd, res;
} child_t;

typedef struct {
  unsigned long long sat, lat, loss;
  long long dropped, span_us;
  double cpu;
} report_t;

static report_t ask_stats(child_t* c) {
  report_t r = {0};
  char line[256];
  write_line(c->cmd, "stats");
  read_line(c->res, line, sizeof line);
  sscanf(line, "%llu %llu %llu %lld %lld %lf", &r.sat, &r.lat, &r.loss, &r.dropped, &r.span_us, &r.cpu);
  return r;
}

static void publish(natsConnection* nc, char* payload, int size, char kind) {
  payload[0] = kind;
  int64_t t = now_us();
  memcpy(payload + 1, &t, 8);
  while (natsConnection_Publish(nc, kSubject, payload, size) != NATS_OK) usleep(50);
}

static void paced(natsConnection* nc, char* payload, int size, char kind, int count, int per_s) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < count; ++i) {
    publish(nc, payload, size, kind);  /* the client's flusher thread sends it at once */
    long long due_ns = (long long)(i + 1) * 1000000000LL / per_s;
    struct timespec due = {t0.tv_sec + due_ns / 1000000000LL, t0.tv_nsec + due_ns % 1000000000LL};
    if (due.tv_nsec >= 1000000000L) due.tv_sec++, due.tv_nsec -= 1000000000L;
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL);
  }
}

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const int port = arg(argc, argv, "--port", 4222);
  const int subscribers = arg(argc, argv, "--subscribers", 2);
  const int seconds = arg(argc, argv, "--seconds", 10);
  const int size = arg(argc, argv, "--size", 1024);
  const int lat_messages = arg(argc, argv, "--latency-messages", 20000);
  const int fixed_rate = arg(argc, argv, "--rate", 0);
  const int server_pid = arg(argc, argv, "--server-pid", 0);
  child_t children[16];
  for (int i = 0; i < subscribers && i < 16; ++i) {
    int to_child[2], to_parent[2];
    if (pipe(to_child) != 0 || pipe(to_parent) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) subscriber(port, to_child[0], to_parent[1]);
    children[i] = (child_t){pid, to_child[1], to_parent[0]};
  }
  char url[64], line[256];
  snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
  natsConnection* nc = NULL;
  if (natsConnection_ConnectTo(&nc, url) != NATS_OK) {
    fprintf(stderr, "nats: cannot connect to %s\n", url);
    return 1;
  }
  for (int i = 0; i < subscribers; ++i) read_line(children[i].res, line, sizeof line);
  char* payload = calloc(1, (size_t)size);
  memset(payload + 9, 'x', (size_t)size - 9);

  /* 1. saturation */
  for (int i = 0; i < subscribers; ++i) {
    write_line(children[i].cmd, "mark");
    read_line(children[i].res, line, sizeof line);
  }
  double cpu0 = cpu_seconds(), server0 = proc_cpu(server_pid);
  unsigned long long sent = 0;
  int64_t start = now_us();
  while (now_us() - start < (int64_t)seconds * 1000000) {
    publish(nc, payload, size, 's');
    ++sent;
  }
  natsConnection_Flush(nc);
  report_t reports[16] = {{0}};
  for (int round = 0; round < 100; ++round) {
    usleep(300000);
    int moved = 0;
    for (int i = 0; i < subscribers; ++i) {
      report_t r = ask_stats(&children[i]);
      moved |= r.sat != reports[i].sat;
      reports[i] = r;
    }
    if (!moved) break;
  }
  double cpu = cpu_seconds() - cpu0 + proc_cpu(server_pid) - server0, capacity = 1e18;
  unsigned long long delivered = 0, min_received = ~0ull;
  for (int i = 0; i < subscribers; ++i) {
    double r = reports[i].span_us > 0 ? (double)reports[i].sat / ((double)reports[i].span_us / 1e6) : 0;
    if (r < capacity) capacity = r;
    if (reports[i].sat < min_received) min_received = reports[i].sat;
    delivered += reports[i].sat;
    cpu += reports[i].cpu;
    fprintf(stderr, "nats: subscriber %d: delivered %llu of %llu (client drops %lld)\n", i, reports[i].sat, sent,
            reports[i].dropped);
  }
  printf("{\"system\":\"nats\",\"bench\":\"pubsub_throughput\",\"msgs_per_s_per_subscriber\":%.0f,\"seconds\":%d,"
         "\"published\":%llu,\"received_min\":%llu,\"cpu_us_per_msg\":%.3f}\n",
         capacity, seconds, sent, min_received, delivered ? cpu * 1e6 / (double)delivered : 0);
  fflush(stdout);

  /* 2. latency at half the capacity */
  int rate = fixed_rate > 0 ? fixed_rate : (int)(capacity / 2);
  if (rate < 100) rate = 100;
  for (int i = 0; i < subscribers; ++i) {
    write_line(children[i].cmd, "latency");
    read_line(children[i].res, line, sizeof line);
  }
  paced(nc, payload, size, 'l', lat_messages, rate);
  usleep(1000000);
  double p50 = 0, p99 = 0;
  size_t received = 0;
  for (int i = 0; i < subscribers; ++i) {
    size_t n = 0;
    double a = 0, b = 0;
    write_line(children[i].cmd, "latency");
    read_line(children[i].res, line, sizeof line);
    sscanf(line, "%zu %lf %lf", &n, &a, &b);
    received += n;
    if (a > p50) p50 = a;
    if (b > p99) p99 = b;
  }
  printf("{\"system\":\"nats\",\"bench\":\"pubsub_latency\",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"rate\":%d,"
         "\"messages\":%d,\"received\":%zu,\"subscribers\":%d}\n",
         p50, p99, rate, lat_messages, received, subscribers);
  fflush(stdout);

  /* 3. loss at 80% */
  int loss_rate = (int)(capacity * 0.8);
  if (loss_rate < 100) loss_rate = 100;
  int loss_messages = loss_rate * (seconds < 3 ? seconds : 3);
  paced(nc, payload, size, 'o', loss_messages, loss_rate);
  unsigned long long loss_min = ~0ull;
  for (int round = 0; round < 20; ++round) {
    usleep(300000);
    loss_min = ~0ull;
    for (int i = 0; i < subscribers; ++i) {
      report_t r = ask_stats(&children[i]);
      if (r.loss < loss_min) loss_min = r.loss;
    }
    if (loss_min == (unsigned long long)loss_messages) break;
  }
  printf("{\"system\":\"nats\",\"bench\":\"pubsub_loss\",\"rate\":%d,\"messages\":%d,\"received_min\":%llu,\"lost\":%lld}\n",
         loss_rate, loss_messages, loss_min, (long long)loss_messages - (long long)loss_min);
  fflush(stdout);
  for (int i = 0; i < subscribers; ++i) write_line(children[i].cmd, "exit");
  for (int i = 0; i < subscribers; ++i) waitpid(children[i].pid, NULL, 0);
  natsConnection_Destroy(nc);
  return 0;
}
