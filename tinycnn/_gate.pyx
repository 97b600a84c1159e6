# Compiled Gate for the engine's thread pool. Reference: parallel.Gate (same methods, same
# meaning; it only blocks, this one spins first).
#
# Why spin: a thread that sleeps on a condition variable took tens of microseconds to wake
# on the 2-core virtual machine we measured on. A parallel_for that did nothing took 73 us on
# two threads with ThreadPoolExecutor and 26 us with this Gate (measured). While it spins the
# waiting thread holds no GIL and runs the x86 PAUSE instruction.
#
# Compiled tasks: a kernel module can hand a pool thread a C function and its arguments
# (post_task), which the thread runs in serve() without taking the GIL. A Python chunk needs
# the GIL to start, and while the caller held it for its own chunk's Python the other thread
# waited: two threads' Winograd bands of one 80 -> 80 image took 342 us as Python chunks, 277 us
# calling the compiled kernel directly, where one band alone took 214 us (measured).
cimport numpy as cnp
from libc.stdint cimport uintptr_t
from libc.string cimport memcmp

cnp.import_array()

ctypedef int (*task_fn)(void* arg) noexcept nogil   # a compiled task: 0, or an error code

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    int pthread_mutex_init(pthread_mutex_t*, void*)
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)
    int pthread_mutex_destroy(pthread_mutex_t*)
    int pthread_cond_init(pthread_cond_t*, void*)
    int pthread_cond_signal(pthread_cond_t*)
    int pthread_cond_wait(pthread_cond_t*, pthread_mutex_t*)
    int pthread_cond_destroy(pthread_cond_t*)

cdef extern from *:
    """
    #include <time.h>
    static inline long gate_load(const long* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void gate_store(long* p, long v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline void gate_pause(void) {
    #if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
    #endif
    }
    static inline double gate_now(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return t.tv_sec + 1e-9 * t.tv_nsec;
    }
    """
    long gate_load(const long* p) nogil
    void gate_store(long* p, long v) nogil
    void gate_pause() nogil
    double gate_now() nogil


cdef class Gate:
    """A count that one thread raises (post) and another waits to reach (wait).

    wait(target, spin) first re-reads the count for up to `spin` seconds without the GIL,
    then sleeps on a condition variable until post wakes it. The count only changes under
    the mutex, and a waiter only sleeps after checking it under the mutex, so no post is missed.
    """
    cdef long _count
    cdef int sleeping
    cdef pthread_mutex_t mutex
    cdef pthread_cond_t cond
    cdef task_fn fn                             # the compiled task posted with post_task, or NULL
    cdef void* arg

    def __cinit__(self):
        self._count = 0
        self.sleeping = 0
        self.fn = NULL
        self.arg = NULL
        if pthread_mutex_init(&self.mutex, NULL) != 0 or pthread_cond_init(&self.cond, NULL) != 0:
            raise MemoryError("Gate: pthread_mutex_init or pthread_cond_init failed")

    def __dealloc__(self):
        pthread_cond_destroy(&self.cond)
        pthread_mutex_destroy(&self.mutex)

    @property
    def count(self):
        """How many times post has been called."""
        return gate_load(&self._count)

    cdef void _post(self) noexcept nogil:
        pthread_mutex_lock(&self.mutex)
        gate_store(&self._count, self._count + 1)
        if self.sleeping:
            pthread_cond_signal(&self.cond)
        pthread_mutex_unlock(&self.mutex)

    cdef void _wait(self, long target, double spin) noexcept nogil:
        cdef double start = gate_now()
        cdef int i
        while True:
            for i in range(64):                 # ~64 PAUSEs between clock reads
                if gate_load(&self._count) >= target:
                    return
                gate_pause()
            if gate_now() - start >= spin:
                break
        pthread_mutex_lock(&self.mutex)
        while self._count < target:
            self.sleeping = 1
            pthread_cond_wait(&self.cond, &self.mutex)
        self.sleeping = 0
        pthread_mutex_unlock(&self.mutex)

    def post(self):
        """count += 1, and wake the waiter if it sleeps. Keeps the GIL (a few instructions)."""
        self._post()

    def wait(self, long target, double spin=0.0):
        """Return once count >= target: spin up to `spin` seconds, then sleep. Without the GIL."""
        with nogil:
            self._wait(target, spin)

    def post_task(self, uintptr_t fn, uintptr_t arg):
        """Post a compiled task: the thread that serves this gate runs fn(arg) without the GIL.
        fn is a task_fn's address and arg its argument's; whatever arg points to must stay alive
        until the serving thread has posted its done gate."""
        if fn == 0:
            raise ValueError("Gate.post_task: fn is NULL")
        self.fn = <task_fn> fn
        self.arg = <void*> arg
        self._post()                            # the release store publishes fn and arg

    def serve(self, Gate done not None, long target, double spin=0.0, bint post_first=False):
        """Wait until count >= target; while what arrived is a compiled task, run it, post
        `done`, and wait for the next (target + 1, ...), all without the GIL. Returns the target
        at which anything else (a Python task) arrived. With post_first, done is posted first,
        the GIL already released, so that the thread it wakes can take the GIL at once."""
        cdef task_fn fn
        with nogil:
            if post_first:
                done._post()
            while True:
                self._wait(target, spin)
                fn = self.fn
                if fn == NULL:
                    break
                self.fn = NULL                  # before done is posted: the next post_task may follow
                fn(self.arg)                    # its status stays in its argument, for the caller
                target += 1
                done._post()
        return target


# --- a compiled task of the pool's own: do two arrays hold the same bytes? --------------------

cdef struct SameBytesArgs:
    const char* a
    const char* b
    size_t n
    int same


cdef int _same_bytes_task(void* arg) noexcept nogil:
    cdef SameBytesArgs* t = <SameBytesArgs*> arg
    t.same = memcmp(t.a, t.b, t.n) == 0
    return 0


cdef class SameBytesTask:
    """Whether a.flat[lo:hi] and b.flat[lo:hi] hold the same bytes (a and b C-contiguous, of one
    dtype and shape), as a compiled task: run() here, or a pool thread runs it without the GIL.
    `same` holds the answer once it has run. Reference: parallel.SameBytesTask."""
    cdef SameBytesArgs t
    cdef tuple arrays

    def __init__(self, a, b, Py_ssize_t lo, Py_ssize_t hi):
        if (not isinstance(a, cnp.ndarray) or not isinstance(b, cnp.ndarray) or a.dtype != b.dtype
                or a.shape != b.shape or not (a.flags.c_contiguous and b.flags.c_contiguous)):
            raise ValueError(f"SameBytesTask: a and b must be C-contiguous arrays of one dtype and shape, got "
                             f"{getattr(a, 'dtype', type(a))} {getattr(a, 'shape', '')} and "
                             f"{getattr(b, 'dtype', type(b))} {getattr(b, 'shape', '')}")
        if not 0 <= lo <= hi <= a.size:
            raise ValueError(f"SameBytesTask: lo..hi-1 must lie in 0..{a.size - 1}, got lo={lo}, hi={hi}")
        cdef Py_ssize_t itemsize = a.itemsize
        self.arrays = (a, b)
        self.t.a = <const char*> cnp.PyArray_DATA(<cnp.ndarray> a) + lo * itemsize
        self.t.b = <const char*> cnp.PyArray_DATA(<cnp.ndarray> b) + lo * itemsize
        self.t.n = (hi - lo) * itemsize
        self.t.same = 0

    @property
    def address(self):
        """(task function, argument) addresses, for Gate.post_task."""
        return <uintptr_t> &_same_bytes_task, <uintptr_t> &self.t

    @property
    def same(self):
        return bool(self.t.same)

    def run(self):
        with nogil:
            _same_bytes_task(&self.t)

    def check(self):
        """Nothing can fail."""
