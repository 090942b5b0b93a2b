/* An LD_PRELOAD shim for linux.uml (User-Mode Linux 6.1): ptrace's XSTATE regset at the
 * host's size. See tests/e2e/xstate.py for why; built by it at boot.
 *
 * UML saves and restores its processes' FPU state with PTRACE_GETREGSET/SETREGSET
 * NT_X86_XSTATE into a struct _xstate (832 bytes: FXSAVE, header, YMM). A host whose
 * XSAVE area is larger (AVX-512, AMX) refuses a SETREGSET of any other size than its own
 * with EFAULT, and the guest's init dies at its first context switch. Here every such
 * call goes through a buffer of the host's size: GET copies UML's part out of it; SET
 * first GETs the process's current state, lays UML's part over it and SETs the whole.
 * The parts UML does not know (AVX-512, AMX) keep the host process's own values. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#define PTRACE_GETREGSET_ 0x4204
#define PTRACE_SETREGSET_ 0x4205
#define NT_X86_XSTATE_ 0x202
#define BIG (64 * 1024)

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

static long real_ptrace(int req, pid_t pid, void *addr, void *data) {
    static ptrace_fn fn;
    if (!fn)
        fn = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
    return fn(req, pid, addr, data);
}

long ptrace(int req, pid_t pid, void *addr, void *data) {
    static __thread unsigned char big[BIG] __attribute__((aligned(64)));
    struct iovec *iov = data;
    struct iovec full = {big, BIG};
    size_t n;
    long r;

    if ((req != PTRACE_GETREGSET_ && req != PTRACE_SETREGSET_) ||
        (unsigned long)addr != NT_X86_XSTATE_)
        return real_ptrace(req, pid, addr, data);
    r = real_ptrace(PTRACE_GETREGSET_, pid, addr, &full);
    if (r < 0)
        return r;
    n = iov->iov_len < full.iov_len ? iov->iov_len : full.iov_len;
    if (req == PTRACE_GETREGSET_) {
        memcpy(iov->iov_base, big, n);
        iov->iov_len = n;
        return r;
    }
    memcpy(big, iov->iov_base, n);
    return real_ptrace(PTRACE_SETREGSET_, pid, addr, &full);
}
