/* Round trip of one cache line between two CPUs, in nanoseconds: thread A on the first CPU
 * writes a counter, thread B on the second answers, 200,000 times; the best of 3 runs.
 *
 *     cc -O2 -pthread core_to_core.c -o core_to_core && ./core_to_core [cpuA cpuB]
 *
 * scripts/bench_latency.py prints it beside each memory-bandwidth probe. On this project's
 * 2-vCPU VMs the two vCPUs sometimes share an L3 (round trip ~55-120 ns; two threads stream
 * 26-37 GB/s) and sometimes sit on separate ones (~320-380 ns; 38-64 GB/s), and the hypervisor
 * moves them without notice, so the "bound" a probe reads depends on where they sat.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { ROUNDS = 200000 };
static _Alignas(64) atomic_long line;
static int cpus[2];

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void* answer(void* unused) {
  (void)unused;
  pin(cpus[1]);
  for (long i = 0; i < ROUNDS; i++) {
    while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 1) {
    }
    atomic_store_explicit(&line, 2 * i + 2, memory_order_release);
  }
  return NULL;
}

static double round_trip_ns(void) {
  atomic_store(&line, 0);
  pthread_t other;
  pthread_create(&other, NULL, answer, NULL);
  pin(cpus[0]);
  const double t0 = seconds();
  for (long i = 0; i < ROUNDS; i++) {
    atomic_store_explicit(&line, 2 * i + 1, memory_order_release);
    while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 2) {
    }
  }
  const double t1 = seconds();
  pthread_join(other, NULL);
  return (t1 - t0) / ROUNDS * 1e9;
}

int main(int argc, char** argv) {
  cpus[0] = argc > 2 ? atoi(argv[1]) : 0;
  cpus[1] = argc > 2 ? atoi(argv[2]) : 1;
  double best = 1e30;
  for (int run = 0; run < 3; run++) {
    const double ns = round_trip_ns();
    if (ns < best) best = ns;
  }
  printf("%.1f\n", best);
  return 0;
}
