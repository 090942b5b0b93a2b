/*
 * sstp-pppd-keys.so: a pppd plugin that hands the MPPE keys of the PPP
 * authentication to the SSTP client (sstp-pppd, or sstpc) for the SSTP
 * crypto binding.
 *
 * It speaks sstp-client's "sstp-api" over an AF_UNIX stream socket, one
 * message per connection, every field in host byte order:
 *   header:    u32 magic 0x73737470, u16 payload length, u16 type
 *              (AUTH 1, ADDR 2, ACK 3)
 *   attribute: u16 type, u16 data length, data padded to 4 bytes
 *              (MPPE send key 1, MPPE receive key 2; gateway name 3 and raw
 *              sockaddr 4 only appear in ADDR replies)
 * The plugin sends AUTH with the send and receive keys as pppd holds them
 * (pppd's view is the client's), or with no attributes when the auth method
 * made none (PAP, CHAP-MD5), and waits up to SSTP_ACK_TIMEOUT seconds for
 * the ACK. The client builds the HLAK from them.
 *
 * Key lengths: MS-CHAPv2 and EAP-MSCHAPv2 give 16 bytes each on pppd 2.4.9
 * and the whole 20-byte SHA-1 on 2.5 (the first 16 are the MPPE key).
 * EAP-TLS: pppd 2.5 keeps 32 bytes of each key (send = MSK[0:32] on the
 * client), so a client taking a 32-byte send key as the HLAK gets MSK[0:32]
 * as [MS-SSTP] wants. pppd 2.4.9 keeps only 16 bytes of each (send =
 * MSK[0:16], receive = MSK[32:48]); the plugin hands over exactly those, as
 * sstp-client's does, so the HLAK becomes MSK[0:16] || MSK[32:48]: what
 * sstp-server with pppd 2.4.9 expects, not what Windows servers do.
 *
 * Unlike sstp-client's plugin it never kills pppd: when nothing listens on
 * the socket it says so once and pppd carries on (the client then has its
 * own key sources). The keys are never logged, not even with "debug".
 *
 * Socket: the privileged option "sstp-sock PATH"; by default
 * /var/run/sstpc/sstpc-<ipparam> when pppd has an ipparam, else
 * /var/run/sstpc/sstpc-uds-sock (sstpc's names).
 *
 * One source for pppd 2.4.9 (auth_up_notifier, the mppe_send_key and
 * mppe_recv_key globals, the ipparam global) and pppd 2.5
 * (ppp_add_notify(NF_AUTH_UP), mppe_get_send_key/mppe_get_recv_key,
 * ppp_ipparam()). pppd 2.5's pppd.h includes pppdconf.h, which defines
 * PPPD_VERSION; 2.4.x has VERSION from patchlevel.h instead.
 *
 * When the keys go out: pppd calls its auth-up notifier and then enters
 * the network phase once every authentication has succeeded, before CCP
 * and the network protocols start, so before the link carries data. pppd
 * 2.4.9 calls auth_up_notifier only when it authenticated the peer itself
 * (a client normally runs with "noauth"), so the change to PHASE_NETWORK is
 * the trigger there too; whichever comes first sends, once per link.
 */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <pppd/pppd.h>

#ifdef PPPD_VERSION
#define SSTP_PPPD_25 1
#include <pppd/options.h>
#include <pppd/mppe.h>
#define SSTP_PPPD_VERSION_STRING PPPD_VERSION
#else
#define SSTP_PPPD_25 0
/* chap_ms.h declares the MPPE key globals only when MPPE is defined. */
#ifndef MPPE
#define MPPE 1
#endif
#include <pppd/chap_ms.h>
#define SSTP_PPPD_VERSION_STRING VERSION
#endif

#define SSTP_API_MAGIC 0x73737470u
#define SSTP_API_MSG_AUTH 1
#define SSTP_API_MSG_ACK 3
#define SSTP_API_ATTR_MPPE_SEND 1
#define SSTP_API_ATTR_MPPE_RECV 2
#define SSTP_SOCK_DIR "/var/run/sstpc"
#define SSTP_ACK_TIMEOUT 5
/* The longest key pppd keeps: 16 bytes in 2.4, 32 (EAP-TLS) in 2.5. */
#define SSTP_KEY_MAX 32
#define LOG_PREFIX "sstp-pppd-keys: "

char pppd_version[] = SSTP_PPPD_VERSION_STRING;

static char *sstp_sock = NULL;
/* Set once the keys went out for the current link; cleared when LCP starts again. */
static int keys_sent = 0;
/* Each complaint only once per pppd process: a persist loop must not flood the log. */
static int warned_socket = 0;
static int warned_nokeys = 0;

static option_t sstp_options[] = {
    {.name = "sstp-sock",
     .type = o_string,
     .addr = &sstp_sock,
     .description = "Unix socket of the SSTP client that takes the MPPE keys",
     .flags = OPT_PRIV},
    {.name = NULL},
};

struct sstp_msg {
    unsigned char buf[8 + 2 * (4 + SSTP_KEY_MAX)];
    size_t len;
};

static void put16(unsigned char *p, uint16_t v)
{
    memcpy(p, &v, sizeof v); /* host byte order, as sstp-api wants */
}

static void put32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

static void msg_init(struct sstp_msg *m, uint16_t type)
{
    memset(m, 0, sizeof *m);
    put32(m->buf, SSTP_API_MAGIC);
    put16(m->buf + 6, type);
    m->len = 8;
}

static void msg_add_attr(struct sstp_msg *m, uint16_t type, const unsigned char *data,
                         size_t len)
{
    size_t padded = (len + 3) & ~(size_t)3;

    if (len > SSTP_KEY_MAX || m->len + 4 + padded > sizeof m->buf)
        return; /* cannot happen: the keys are at most SSTP_KEY_MAX bytes */
    put16(m->buf + m->len, type);
    put16(m->buf + m->len + 2, (uint16_t)len);
    memcpy(m->buf + m->len + 4, data, len);
    m->len += 4 + padded;
    put16(m->buf + 4, (uint16_t)(m->len - 8));
}

static size_t get_send_key(unsigned char *key)
{
#if SSTP_PPPD_25
    int n;

    if (!mppe_keys_isset())
        return 0;
    n = mppe_get_send_key(key, SSTP_KEY_MAX);
    return n > 0 ? (size_t)n : 0;
#else
    if (!mppe_keys_set)
        return 0;
    memcpy(key, mppe_send_key, sizeof mppe_send_key);
    return sizeof mppe_send_key;
#endif
}

static size_t get_recv_key(unsigned char *key)
{
#if SSTP_PPPD_25
    int n;

    if (!mppe_keys_isset())
        return 0;
    n = mppe_get_recv_key(key, SSTP_KEY_MAX);
    return n > 0 ? (size_t)n : 0;
#else
    if (!mppe_keys_set)
        return 0;
    memcpy(key, mppe_recv_key, sizeof mppe_recv_key);
    return sizeof mppe_recv_key;
#endif
}

static const char *get_ipparam(void)
{
#if SSTP_PPPD_25
    return ppp_ipparam();
#else
    return ipparam;
#endif
}

static void socket_path(char *path, size_t size)
{
    const char *param = get_ipparam();

    if (sstp_sock != NULL && sstp_sock[0] != '\0')
        snprintf(path, size, "%s", sstp_sock);
    else if (param != NULL && param[0] != '\0')
        snprintf(path, size, SSTP_SOCK_DIR "/sstpc-%s", param);
    else
        snprintf(path, size, SSTP_SOCK_DIR "/sstpc-uds-sock");
}

static int send_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        /* MSG_NOSIGNAL: a listener that went away must not SIGPIPE pppd. */
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads exactly len bytes; 0 on success, -1 with errno (EPIPE for an early EOF). */
static int read_all(int fd, unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = read(fd, p, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EPIPE;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void warn_socket(const char *path, const char *what)
{
    if (warned_socket)
        return;
    warned_socket = 1;
    warn(LOG_PREFIX "%s %s (%m): pppd continues without handing over the MPPE keys",
         what, path);
}

/* One AUTH message on a fresh connection, then the ACK. Never fatal. */
static void send_auth(const struct sstp_msg *m, const char *path, int with_keys)
{
    struct sockaddr_un addr;
    struct timeval tv = {.tv_sec = SSTP_ACK_TIMEOUT, .tv_usec = 0};
    unsigned char ack[8];
    uint32_t magic;
    uint16_t len, type;
    int fd;

    if (strlen(path) >= sizeof addr.sun_path) {
        errno = ENAMETOOLONG;
        warn_socket(path, "socket path too long:");
        return;
    }
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, strlen(path) + 1);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        warn_socket(path, "cannot make a socket for");
        return;
    }
    /* pppd is single-threaded: never let a stuck listener hold it up for long. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        warn_socket(path, "no SSTP client listens on");
        close(fd);
        return;
    }
    if (send_all(fd, m->buf, m->len) < 0) {
        warn_socket(path, "could not send the MPPE keys to");
        close(fd);
        return;
    }
    if (read_all(fd, ack, sizeof ack) < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            errno = ETIMEDOUT;
        warn_socket(path, "no acknowledgement from");
        close(fd);
        return;
    }
    close(fd);
    memcpy(&magic, ack, 4);
    memcpy(&len, ack + 4, 2);
    memcpy(&type, ack + 6, 2);
    if (magic != SSTP_API_MAGIC || type != SSTP_API_MSG_ACK) {
        if (!warned_socket) {
            warned_socket = 1;
            warn(LOG_PREFIX "unexpected reply from %s (magic 0x%x, type %d, length %d)", path,
                 (unsigned int)magic, (int)type, (int)len);
        }
        return;
    }
    if (with_keys)
        notice(LOG_PREFIX "MPPE keys handed to the SSTP client at %s", path);
    else
        notice(LOG_PREFIX "told the SSTP client at %s that there are no MPPE keys", path);
}

static void send_keys(const char *trigger)
{
    unsigned char send_key[SSTP_KEY_MAX], recv_key[SSTP_KEY_MAX];
    size_t send_len, recv_len;
    struct sstp_msg m;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 64];

    if (keys_sent)
        return;
    keys_sent = 1;
    dbglog(LOG_PREFIX "authentication done (%s)", trigger);

    send_len = get_send_key(send_key);
    recv_len = get_recv_key(recv_key);
    msg_init(&m, SSTP_API_MSG_AUTH);
    if (send_len > 0 && recv_len > 0) {
        msg_add_attr(&m, SSTP_API_ATTR_MPPE_SEND, send_key, send_len);
        msg_add_attr(&m, SSTP_API_ATTR_MPPE_RECV, recv_key, recv_len);
        /* Lengths only: the keys themselves stay out of every log. */
        dbglog(LOG_PREFIX "sending MPPE keys (send %d bytes, receive %d bytes)", (int)send_len,
               (int)recv_len);
    } else if (!warned_nokeys) {
        warned_nokeys = 1;
        notice(LOG_PREFIX "no MPPE keys for this auth method: the binding uses zeros");
    }
    memset(send_key, 0, sizeof send_key);
    memset(recv_key, 0, sizeof recv_key);

    socket_path(path, sizeof path);
    send_auth(&m, path, send_len > 0 && recv_len > 0);
    memset(&m, 0, sizeof m);
}

static void on_auth_up(void *ctx, int arg)
{
    (void)ctx;
    (void)arg;
    send_keys("auth-up");
}

static void on_phase_change(void *ctx, int phase_now)
{
    (void)ctx;
    if (phase_now == PHASE_ESTABLISH)
        keys_sent = 0; /* a new link (persist, demand): its auth brings new keys */
    else if (phase_now == PHASE_NETWORK)
        send_keys("network phase");
}

void plugin_init(void)
{
#if SSTP_PPPD_25
    ppp_add_options(sstp_options);
    ppp_add_notify(NF_AUTH_UP, on_auth_up, NULL);
    ppp_add_notify(NF_PHASE_CHANGE, on_phase_change, NULL);
#else
    add_options(sstp_options);
    add_notifier(&auth_up_notifier, on_auth_up, NULL);
    add_notifier(&phasechange, on_phase_change, NULL);
#endif
}
