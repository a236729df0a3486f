/* Preloaded before Debian's libfaketime 0.9.10 in CI (see .ci/run), with
   FAKETIME_DONT_FAKE_MONOTONIC=1: monotonic time is real, only the wall clock is moved. That
   libfaketime mishandles two monotonic waits, which this shim hands to the kernel and glibc:
   - clock_nanosleep(CLOCK_MONOTONIC, ...) fails with EINVAL (so does every Python time.sleep);
   - pthread_cond_timedwait on a monotonic condition variable (CPython's GIL hand-off) has its
     deadline mangled, so threads wait far longer than asked and everything slows down tenfold.
   Realtime waits still go through libfaketime, which converts their faked deadlines. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int clock_nanosleep(clockid_t clock, int flags, const struct timespec *request,
                    struct timespec *remain) {
    if (clock == CLOCK_MONOTONIC) {
        return syscall(SYS_clock_nanosleep, clock, flags, request, remain) == -1 ? errno : 0;
    }
    int (*next)(clockid_t, int, const struct timespec *, struct timespec *) =
        dlsym(RTLD_NEXT, "clock_nanosleep");
    return next(clock, flags, request, remain);
}

typedef int (*timedwait_fn)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);

/* glibc keeps a condition variable's clock in bit 1 of __wrefs (1: CLOCK_MONOTONIC). */
#define COND_CLOCK_MONOTONIC_MASK 2u

int pthread_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *mutex,
                           const struct timespec *deadline) {
    static timedwait_fn glibc_wait, faked_wait;
    if (!glibc_wait) {
        void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
        glibc_wait = (timedwait_fn)dlvsym(libc, "pthread_cond_timedwait", "GLIBC_2.3.2");
        faked_wait = (timedwait_fn)dlvsym(RTLD_NEXT, "pthread_cond_timedwait", "GLIBC_2.3.2");
    }
    if (cond->__data.__wrefs & COND_CLOCK_MONOTONIC_MASK) {
        return glibc_wait(cond, mutex, deadline);
    }
    return faked_wait(cond, mutex, deadline);
}
