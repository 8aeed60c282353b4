/* Each libcurl multi handle opens a socket pair at creation, only for curl_multi_wakeup(),
 * which airouter never calls: with one multi handle per call that doubled the descriptors
 * of every stream. libcurl treats a failed socketpair() as "no wake-up" and carries on, so
 * while one of our multi handles is created, socketpair() fails in that thread. The
 * executable's socketpair() comes first in symbol lookup, libcurl's calls included; every
 * other call goes straight to the system call. */
#include "worker/backend/curl_nowakeup.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static __thread bool creating_multi;

int socketpair(int domain, int type, int protocol, int sv[2])
{
    if (creating_multi) {
        errno = EMFILE;
        return -1;
    }
    return (int)syscall(SYS_socketpair, domain, type, protocol, sv);
}

CURLM *curl_nowakeup_multi_init(void)
{
    creating_multi = true;
    CURLM *m = curl_multi_init();
    creating_multi = false;
    return m;
}
