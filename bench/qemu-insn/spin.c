/*
 * spin THREADS N: THREADS threads each run a two-instruction loop N times, all at once.
 * scripts/bench-aarch64 runs it under insn_count twice (N = 1 and N = 1 + M) to check that
 * the plugin counts exactly 2 * M * THREADS more instructions when threads run in parallel.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void *spin(void *arg)
{
    uint64_t n = (uint64_t)(uintptr_t)arg;
#if defined(__aarch64__)
    __asm__ volatile("1: subs %0, %0, #1\n\tb.ne 1b" : "+r"(n) : : "cc");
#elif defined(__x86_64__)
    __asm__ volatile("1: dec %0\n\tjnz 1b" : "+r"(n) : : "cc");
#else
#error "spin.c: aarch64 or x86_64 only"
#endif
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: spin THREADS N (N >= 1)\n");
        return 2;
    }
    int threads = atoi(argv[1]);
    uint64_t n = strtoull(argv[2], NULL, 10);
    if (threads < 1 || threads > 64 || n < 1) {
        fprintf(stderr, "spin: 1 <= THREADS <= 64 and N >= 1\n");
        return 2;
    }
    pthread_t ids[64];
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&ids[i], NULL, spin, (void *)(uintptr_t)n) != 0) {
            fprintf(stderr, "spin: pthread_create failed\n");
            return 1;
        }
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
    }
    return 0;
}
