/* The SFTP driver (libssh2). URL: sftp://[user@]host[:port]/path, where /path is absolute
 * and /~/path is relative to the login directory (as curl reads such URLs).
 *
 * Connections: libssh2 sessions are not thread-safe, so the store keeps a pool of
 * opts->connections sessions (default 4), each used by one thread at a time. A session
 * that fails at the transport level is dropped (the error is retryable) and a new one is
 * made by the next call that needs it.
 *
 * Trust: the server's host key must be in known_hosts (opts->known_hosts, default
 * ~/.ssh/known_hosts). An unknown key is refused with its SHA256 fingerprint unless
 * opts->ssh_accept_new, which appends it; a different key is refused outright (PF_EAUTH).
 * A host known by any key is never "unknown": the handshake offers only the kinds of key
 * recorded for it (so an impostor with another kind fails it), and the key it shows is
 * compared with all of them.
 * Authentication tries the SSH agent, then opts->ssh_key, then ~/.ssh/id_ed25519,
 * id_ecdsa and id_rsa (keys without a passphrase).
 *
 * put writes "<key>.tmp-<random>" (fsync'd where the server offers fsync@openssh.com) and
 * renames it over the key, creating missing directories on demand. SFTP v3 (OpenSSH) has
 * no rename that replaces, and libssh2 1.10 cannot send posix-rename@openssh.com, so
 * replacing an existing key is remove + rename: a reader racing a replacement may find no
 * object for a moment, never a partial one. Repository objects other than locks are
 * written once, so this only matters for retries and locks. */
#include "store/store.h"
#include "common/alloc.h"
#include "common/log.h"
#include "store/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define SFTP_DEFAULT_CONNECTIONS 4
#define SFTP_MAX_CONNECTIONS 64
#define SFTP_IO_CHUNK (2u << 20)

typedef struct conn {
    int sock;
    LIBSSH2_SESSION *ssh;
    LIBSSH2_SFTP *sftp;
    int busy;
} conn;

typedef struct sftp_store {
    char *host, *user, *root; /* root: "" (login dir), relative, or absolute */
    int port;
    char *ssh_key, *known_hosts;
    int accept_new;
    long timeout;       /* seconds */
    pthread_mutex_t mu; /* guards conns[].busy */
    pthread_cond_t cond;
    pthread_mutex_t hk_mu; /* one host key check (and known_hosts append) at a time */
    int nconn;
    conn conns[SFTP_MAX_CONNECTIONS];
} sftp_store;

static pthread_once_t ssh_once = PTHREAD_ONCE_INIT;
static int ssh_init_rc;

static void ssh_init_once(void)
{
    ssh_init_rc = libssh2_init(0);
}

/* root + "/" + key into a malloc'd string. */
static char *remote_path(const sftp_store *s, const char *key)
{
    size_t n = strlen(s->root) + strlen(key) + 2;
    char *p = malloc(n);
    if (!p)
        abort();
    if (!s->root[0])
        snprintf(p, n, "%s", key);
    else if (s->root[strlen(s->root) - 1] == '/')
        snprintf(p, n, "%s%s", s->root, key);
    else
        snprintf(p, n, "%s/%s", s->root, key);
    return p;
}

static void conn_close(conn *c)
{
    if (c->sftp)
        libssh2_sftp_shutdown(c->sftp);
    if (c->ssh) {
        libssh2_session_disconnect(c->ssh, "bye");
        libssh2_session_free(c->ssh);
    }
    if (c->sock >= 0)
        close(c->sock);
    c->sftp = NULL;
    c->ssh = NULL;
    c->sock = -1;
}

/* The last libssh2 error of a session as text (never holds secrets). */
static const char *ssh_msg(LIBSSH2_SESSION *ssh)
{
    char *m = NULL;
    if (!ssh)
        return "no session";
    libssh2_session_last_error(ssh, &m, NULL, 0);
    return m && *m ? m : "unknown error";
}

static int tcp_connect(sftp_store *s, pf_err *err)
{
    char port[16];
    struct addrinfo hints = {0}, *res = NULL;
    snprintf(port, sizeof port, "%d", s->port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(s->host, port, &hints, &res);
    if (gai != 0) {
        pf_err_set(err, PF_ECONN, "cannot resolve SSH host %s: %s", s->host, gai_strerror(gai));
        err->retryable = gai == EAI_AGAIN;
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        /* Bounds connect() and every blocking read/write of a dead peer. */
        struct timeval tv = {s->timeout, 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        errno = saved;
        pf_err_sys(err, PF_ECONN, "cannot connect to SSH server %s port %d", s->host, s->port);
        err->retryable = true;
    }
    return fd;
}

static const char *hostkey_name(int type)
{
    switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        return "RSA";
    case LIBSSH2_HOSTKEY_TYPE_DSS:
        return "DSA";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        return "ECDSA";
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        return "ED25519";
    default:
        return "unknown";
    }
}

static int hostkey_kh_type(int type)
{
    switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_DSS:
        return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        return LIBSSH2_KNOWNHOST_KEY_ED25519;
    default:
        return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
    }
}

/* "SHA256:<base64 without padding>", as OpenSSH prints fingerprints. */
static void fingerprint(LIBSSH2_SESSION *ssh, char *out, size_t n)
{
    const unsigned char *h =
        (const unsigned char *)libssh2_hostkey_hash(ssh, LIBSSH2_HOSTKEY_HASH_SHA256);
    unsigned char b64[64];
    if (!h) {
        snprintf(out, n, "SHA256:(unavailable)");
        return;
    }
    int len = EVP_EncodeBlock(b64, h, 32);
    while (len > 0 && b64[len - 1] == '=')
        len--;
    snprintf(out, n, "SHA256:%.*s", len, (char *)b64);
}

/* Records a new host key by appending one line; the rest of the file is left untouched. */
static int known_hosts_append(sftp_store *s, LIBSSH2_KNOWNHOSTS *kh, const char *name,
                              const char *key, size_t klen, int type, pf_err *err)
{
    struct libssh2_knownhost *entry = NULL;
    char line[8192];
    size_t outlen = 0;
    int rc = -1, fd = -1;
    if (libssh2_knownhost_addc(kh, name, NULL, key, klen, "added by permafrost", 19,
                               LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
                                   hostkey_kh_type(type),
                               &entry) != 0 ||
        libssh2_knownhost_writeline(kh, entry, line, sizeof line, &outlen,
                                    LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0) {
        pf_err_set(err, PF_EIO, "cannot format the host key of %s for %s", name, s->known_hosts);
        goto out;
    }
    /* Create ~/.ssh if this is the first host ever recorded. */
    char *dir = pf_xstrdup(s->known_hosts), *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        mkdir(dir, 0700);
    }
    free(dir);
    fd = open(s->known_hosts, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        pf_err_sys(err, PF_EIO, "cannot open %s to record the host key", s->known_hosts);
        goto out;
    }
    /* Start on a new line even if the file does not end with one. */
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        char last = '\n';
        if (pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n' && write(fd, "\n", 1) != 1) {
            pf_err_sys(err, PF_EIO, "cannot write %s", s->known_hosts);
            goto out;
        }
    }
    if (write(fd, line, outlen) != (ssize_t)outlen || fsync(fd) < 0) {
        pf_err_sys(err, PF_EIO, "cannot write %s", s->known_hosts);
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* The kinds of host key known_hosts holds for this host, one bit per
 * LIBSSH2_KNOWNHOST_KEY_* value. libssh2's own matching of names (plain, [host]:port,
 * hashed) decides: for each entry, whether this host has that entry's key. */
static unsigned known_key_types(const sftp_store *s, LIBSSH2_KNOWNHOSTS *kh)
{
    unsigned mask = 0;
    struct libssh2_knownhost *e = NULL, *prev = NULL;
    while (libssh2_knownhost_get(kh, &e, prev) == 0) {
        int t = e->typemask & LIBSSH2_KNOWNHOST_KEY_MASK;
        struct libssh2_knownhost *f = NULL;
        if (e->key && t != 0 && t != LIBSSH2_KNOWNHOST_KEY_UNKNOWN &&
            libssh2_knownhost_checkp(kh, s->host, s->port, e->key, strlen(e->key),
                                     LIBSSH2_KNOWNHOST_TYPE_PLAIN |
                                         LIBSSH2_KNOWNHOST_KEYENC_BASE64 | t,
                                     &f) == LIBSSH2_KNOWNHOST_CHECK_MATCH)
            mask |= 1u << (t >> LIBSSH2_KNOWNHOST_KEY_SHIFT);
        prev = e;
    }
    return mask;
}

#define KT(k) (1u << ((k) >> LIBSSH2_KNOWNHOST_KEY_SHIFT))

/* Host key algorithms for those kinds, most preferred first; names of the kinds in `what`. */
static void hostkey_prefs(unsigned mask, char *algs, size_t acap, char *what, size_t wcap)
{
    static const struct {
        unsigned bit;
        const char *algs, *name;
    } kinds[] = {
        {KT(LIBSSH2_KNOWNHOST_KEY_ED25519), "ssh-ed25519", "ED25519"},
        {KT(LIBSSH2_KNOWNHOST_KEY_ECDSA_521), "ecdsa-sha2-nistp521", "ECDSA-521"},
        {KT(LIBSSH2_KNOWNHOST_KEY_ECDSA_384), "ecdsa-sha2-nistp384", "ECDSA-384"},
        {KT(LIBSSH2_KNOWNHOST_KEY_ECDSA_256), "ecdsa-sha2-nistp256", "ECDSA-256"},
        {KT(LIBSSH2_KNOWNHOST_KEY_SSHRSA), "rsa-sha2-512,rsa-sha2-256,ssh-rsa", "RSA"},
        {KT(LIBSSH2_KNOWNHOST_KEY_SSHDSS), "ssh-dss", "DSA"},
    };
    size_t al = 0, wl = 0;
    algs[0] = what[0] = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (!(mask & kinds[i].bit))
            continue;
        al += (size_t)snprintf(algs + al, al < acap ? acap - al : 0, "%s%s", al ? "," : "",
                               kinds[i].algs);
        wl += (size_t)snprintf(what + wl, wl < wcap ? wcap - wl : 0, "%s%s", wl ? ", " : "",
                               kinds[i].name);
    }
}

/* The host keys recorded in s->known_hosts, or NULL with err set. A missing file is an
 * empty list; an unreadable one is an error. The caller holds hk_mu and frees the list. */
static LIBSSH2_KNOWNHOSTS *known_hosts_read(sftp_store *s, LIBSSH2_SESSION *ssh, pf_err *err)
{
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(ssh);
    if (!kh) {
        pf_err_set(err, PF_EIO, "cannot check SSH host keys: %s", ssh_msg(ssh));
        return NULL;
    }
    if (access(s->known_hosts, F_OK) == 0 &&
        libssh2_knownhost_readfile(kh, s->known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
        pf_err_set(err, PF_EIO, "cannot read %s: %s", s->known_hosts, ssh_msg(ssh));
        libssh2_knownhost_free(kh);
        return NULL;
    }
    return kh;
}

/* Before the handshake: a host known_hosts knows may only show a key of a kind recorded
 * for it. Otherwise an impostor offering another kind would be "not found" rather than a
 * mismatch, and --ssh-accept-new would record it. *mask gets the known kinds (0: the
 * host is unknown, no restriction), `what` their names. */
static int restrict_host_keys(sftp_store *s, LIBSSH2_SESSION *ssh, unsigned *mask, char *what,
                              size_t wcap, pf_err *err)
{
    int rc = -1;
    *mask = 0;
    what[0] = 0;
    pthread_mutex_lock(&s->hk_mu);
    LIBSSH2_KNOWNHOSTS *kh = known_hosts_read(s, ssh, err);
    if (!kh)
        goto out;
    *mask = known_key_types(s, kh);
    char algs[256];
    hostkey_prefs(*mask, algs, sizeof algs, what, wcap);
    if (*mask && libssh2_session_method_pref(ssh, LIBSSH2_METHOD_HOSTKEY, algs) != 0) {
        pf_err_set(err, PF_EAUTH,
                   "%s records only %s host keys for %s, which this libssh2 cannot check",
                   s->known_hosts, what, s->host);
        goto out;
    }
    rc = 0;
out:
    if (kh)
        libssh2_knownhost_free(kh);
    pthread_mutex_unlock(&s->hk_mu);
    return rc;
}

static int check_host_key(sftp_store *s, LIBSSH2_SESSION *ssh, pf_err *err)
{
    size_t klen = 0;
    int type = 0, rc = -1;
    char fp[80], name[512];
    const char *key = libssh2_session_hostkey(ssh, &klen, &type);
    if (!key) {
        pf_err_set(err, PF_ECONN, "SSH server %s sent no host key", s->host);
        return -1;
    }
    fingerprint(ssh, fp, sizeof fp);
    if (s->port == 22)
        snprintf(name, sizeof name, "%s", s->host);
    else
        snprintf(name, sizeof name, "[%s]:%d", s->host, s->port);
    pthread_mutex_lock(&s->hk_mu);
    LIBSSH2_KNOWNHOSTS *kh = known_hosts_read(s, ssh, err);
    if (!kh)
        goto out;
    /* Key kind 0: compared with every key recorded for the host, whatever its kind, so a
     * host known by any key is a mismatch (never "not found") when it shows another. */
    struct libssh2_knownhost *found = NULL;
    int check = libssh2_knownhost_checkp(
        kh, s->host, s->port, key, klen,
        LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW, &found);
    switch (check) {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
        rc = 0;
        break;
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
        pf_err_set(err, PF_EAUTH,
                   "host key of %s does not match the one in %s (server now offers %s key "
                   "%s): someone may be intercepting the connection, or the server's key "
                   "was changed; if you know it was, remove the old entry from %s",
                   name, s->known_hosts, hostkey_name(type), fp, s->known_hosts);
        break;
    case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
        if (!s->accept_new) {
            pf_err_set(err, PF_EAUTH,
                       "host key of %s is not known (%s key %s): check the fingerprint "
                       "with the server's operator, then run again with --ssh-accept-new to "
                       "record it in %s",
                       name, hostkey_name(type), fp, s->known_hosts);
            break;
        }
        if (known_hosts_append(s, kh, name, key, klen, type, err) < 0)
            break;
        rc = 0;
        break;
    default:
        pf_err_set(err, PF_EAUTH, "cannot check the host key of %s: %s", name, ssh_msg(ssh));
        break;
    }
out:
    if (kh)
        libssh2_knownhost_free(kh);
    pthread_mutex_unlock(&s->hk_mu);
    return rc;
}

static int try_agent(sftp_store *s, LIBSSH2_SESSION *ssh)
{
    if (!getenv("SSH_AUTH_SOCK"))
        return -1;
    LIBSSH2_AGENT *agent = libssh2_agent_init(ssh);
    int rc = -1;
    if (!agent)
        return -1;
    if (libssh2_agent_connect(agent) == 0 && libssh2_agent_list_identities(agent) == 0) {
        struct libssh2_agent_publickey *id = NULL, *prev = NULL;
        while (libssh2_agent_get_identity(agent, &id, prev) == 0) {
            if (libssh2_agent_userauth(agent, s->user, id) == 0) {
                rc = 0;
                break;
            }
            prev = id;
        }
        libssh2_agent_disconnect(agent);
    }
    libssh2_agent_free(agent);
    return rc;
}

static int try_key(sftp_store *s, LIBSSH2_SESSION *ssh, const char *path)
{
    if (access(path, R_OK) != 0)
        return -1;
    /* libssh2 derives the public key from the private one when given none. */
    return libssh2_userauth_publickey_fromfile(ssh, s->user, NULL, path, NULL) == 0 ? 0 : -1;
}

static int authenticate(sftp_store *s, LIBSSH2_SESSION *ssh, pf_err *err)
{
    char tried[1024] = "";
    size_t tl = 0;
    char *methods = libssh2_userauth_list(ssh, s->user, (unsigned)strlen(s->user));
    if (!methods && libssh2_userauth_authenticated(ssh))
        return 0;
    if (methods && !strstr(methods, "publickey")) {
        return pf_err_set(err, PF_EAUTH,
                          "SSH server %s does not accept key authentication for %s (it offers: "
                          "%s): enable PubkeyAuthentication on the server",
                          s->host, s->user, methods);
    }
    if (try_agent(s, ssh) == 0)
        return 0;
    if (getenv("SSH_AUTH_SOCK"))
        tl += (size_t)snprintf(tried + tl, sizeof tried - tl, "the SSH agent");
    if (s->ssh_key) {
        if (access(s->ssh_key, R_OK) != 0)
            return pf_err_sys(err, PF_EAUTH, "cannot read SSH key %s", s->ssh_key);
        if (try_key(s, ssh, s->ssh_key) == 0)
            return 0;
        tl += (size_t)snprintf(tried + tl, sizeof tried - tl, "%s%s", tl ? ", " : "", s->ssh_key);
    } else {
        const char *home = getenv("HOME");
        static const char *names[] = {"id_ed25519", "id_ecdsa", "id_rsa"};
        for (size_t i = 0; home && i < sizeof names / sizeof names[0]; i++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/.ssh/%s", home, names[i]);
            if (access(path, R_OK) != 0)
                continue;
            if (try_key(s, ssh, path) == 0)
                return 0;
            if (tl < sizeof tried)
                tl += (size_t)snprintf(tried + tl, sizeof tried - tl, "%s%s", tl ? ", " : "", path);
        }
    }
    return pf_err_set(err, PF_EAUTH,
                      "SSH authentication as %s to %s failed (tried %s): put your public key "
                      "in the server's authorized_keys or name the right one with --ssh-key",
                      s->user, s->host,
                      tl ? tried : "no key: none of ~/.ssh/id_ed25519, id_ecdsa, id_rsa exists");
}

/* The transport's algorithms: only ciphers and MACs without known weaknesses (no CBC, RC4,
 * 3DES, Blowfish, CAST, MD5, RIPEMD or SHA-1); names this libssh2 lacks are dropped by
 * libssh2_session_method_pref, so the lists also hold what newer ones add (the AEADs from
 * 1.11, the encrypt-then-MAC MACs) for servers that offer nothing else.
 * libssh2 (1.10, and 1.11 and master alike) decrypts and encrypts one 16-byte block per
 * libcrypto call whatever the cipher, so that call's fixed cost, not the cipher's rounds,
 * makes most of an SFTP transfer's extra client CPU (bench/RESULTS.md, "SFTP throughput:
 * what bounds it"); aes128-ctr is the cheapest counter mode, and stays first until an AEAD is
 * measured faster through libssh2. The MAC hashes each packet once, in bulk; SHA-256 has
 * SHA-NI on current x86 CPUs and is ahead of SHA-512. Compression stays off: what
 * permafrost sends is compressed and encrypted already. Key exchange and host key
 * algorithms are left as libssh2 and restrict_host_keys() set them. */
#define SFTP_CIPHERS                                                                               \
    "aes128-ctr,aes256-ctr,aes192-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com,"              \
    "chacha20-poly1305@openssh.com"
#define SFTP_MACS                                                                                  \
    "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha2-512"
static const struct {
    int method;
    const char *prefs, *what;
} transport_prefs[] = {
    {LIBSSH2_METHOD_CRYPT_CS, SFTP_CIPHERS, "cipher"},
    {LIBSSH2_METHOD_CRYPT_SC, SFTP_CIPHERS, "cipher"},
    {LIBSSH2_METHOD_MAC_CS, SFTP_MACS, "MAC"},
    {LIBSSH2_METHOD_MAC_SC, SFTP_MACS, "MAC"},
    {LIBSSH2_METHOD_COMP_CS, "none", "compression"},
    {LIBSSH2_METHOD_COMP_SC, "none", "compression"},
};

/* The names of `list` this libssh2 has for `method`, in list's order, into out ("" when
 * none). libssh2_session_method_pref would drop the others itself, but 1.10 does it with an
 * overlapping memcpy (undefined behaviour; AddressSanitizer aborts), so it only ever gets
 * names it knows. */
static void supported_only(LIBSSH2_SESSION *ssh, int method, const char *list, char *out,
                           size_t cap)
{
    const char **algs = NULL;
    int n = libssh2_session_supported_algs(ssh, method, &algs);
    size_t ol = 0;
    out[0] = 0;
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        for (int k = 0; k < n; k++) {
            if (strlen(algs[k]) == len && !memcmp(algs[k], p, len) && ol + len + 2 <= cap) {
                ol += (size_t)snprintf(out + ol, cap - ol, "%s%.*s", ol ? "," : "", (int)len, p);
                break;
            }
        }
        p += len + (comma != NULL);
    }
    if (n > 0 && algs)
        libssh2_free(ssh, algs);
}

static int set_transport_prefs(sftp_store *s, LIBSSH2_SESSION *ssh, pf_err *err)
{
    for (size_t i = 0; i < sizeof transport_prefs / sizeof transport_prefs[0]; i++) {
        char prefs[256];
        supported_only(ssh, transport_prefs[i].method, transport_prefs[i].prefs, prefs,
                       sizeof prefs);
        if (!prefs[0] || libssh2_session_method_pref(ssh, transport_prefs[i].method, prefs) != 0)
            return pf_err_set(err, PF_EIO, "cannot connect to %s: this libssh2 offers no %s of %s",
                              s->host, transport_prefs[i].what, transport_prefs[i].prefs);
    }
    return 0;
}

/* What the handshake chose, for -v (and for benchmarks: which cipher a transfer paid for). */
static void log_transport(const sftp_store *s, LIBSSH2_SESSION *ssh)
{
    const char *cs = libssh2_session_methods(ssh, LIBSSH2_METHOD_CRYPT_CS);
    const char *sc = libssh2_session_methods(ssh, LIBSSH2_METHOD_CRYPT_SC);
    const char *mcs = libssh2_session_methods(ssh, LIBSSH2_METHOD_MAC_CS);
    const char *msc = libssh2_session_methods(ssh, LIBSSH2_METHOD_MAC_SC);
    const char *kex = libssh2_session_methods(ssh, LIBSSH2_METHOD_KEX);
    pf_debug("sftp: session to %s port %d: key exchange %s, cipher %s / %s, MAC %s / %s "
             "(sent / received)",
             s->host, s->port, kex ? kex : "?", cs ? cs : "?", sc ? sc : "?", mcs ? mcs : "?",
             msc ? msc : "?");
}

/* After a handshake that found no methods in common: were they the cipher or MAC (the
 * server offers only what transport_prefs leaves out) rather than the host key? One more
 * handshake with libssh2's own lists (and the same host key restriction) tells; it is
 * closed at once, never authenticated nor used. On 1, `chosen` names what that handshake
 * agreed on. */
static int refused_transport(sftp_store *s, char *chosen, size_t cap)
{
    pf_err ignored = {0};
    unsigned known = 0;
    char kinds[96];
    int weak = 0, fd = tcp_connect(s, &ignored);
    if (fd < 0)
        return 0;
    LIBSSH2_SESSION *ssh = libssh2_session_init();
    if (ssh) {
        libssh2_session_set_blocking(ssh, 1);
        libssh2_session_set_timeout(ssh, s->timeout * 1000);
        if (restrict_host_keys(s, ssh, &known, kinds, sizeof kinds, &ignored) == 0 &&
            libssh2_session_handshake(ssh, fd) == 0) {
            const char *c = libssh2_session_methods(ssh, LIBSSH2_METHOD_CRYPT_SC);
            const char *m = libssh2_session_methods(ssh, LIBSSH2_METHOD_MAC_SC);
            snprintf(chosen, cap, "%s with %s", c ? c : "?", m ? m : "?");
            weak = 1;
        }
        libssh2_session_disconnect(ssh, "bye");
        libssh2_session_free(ssh);
    }
    close(fd);
    return weak;
}

static int conn_open(sftp_store *s, conn *c, pf_err *err)
{
    c->sock = tcp_connect(s, err);
    if (c->sock < 0)
        return -1;
    c->ssh = libssh2_session_init();
    if (!c->ssh) {
        pf_err_set(err, PF_EIO, "cannot create an SSH session");
        goto fail;
    }
    libssh2_session_set_blocking(c->ssh, 1);
    libssh2_session_set_timeout(c->ssh, s->timeout * 1000);
    if (set_transport_prefs(s, c->ssh, err) < 0)
        goto fail;
    unsigned known = 0;
    char kinds[96];
    if (restrict_host_keys(s, c->ssh, &known, kinds, sizeof kinds, err) < 0)
        goto fail;
    if (libssh2_session_handshake(c->ssh, c->sock) != 0) {
        char chosen[128];
        if (libssh2_session_last_errno(c->ssh) == LIBSSH2_ERROR_KEX_FAILURE &&
            refused_transport(s, chosen, sizeof chosen)) {
            pf_err_set(err, PF_EAUTH,
                       "SSH server %s port %d offers only ciphers or MACs that permafrost "
                       "refuses as weak (it would have used %s): enable aes128-ctr or "
                       "aes256-ctr and hmac-sha2-256 or hmac-sha2-512 on the server (OpenSSH "
                       "has them by default)",
                       s->host, s->port, chosen);
            goto fail;
        }
        if (known && libssh2_session_last_errno(c->ssh) == LIBSSH2_ERROR_KEX_FAILURE) {
            pf_err_set(err, PF_EAUTH,
                       "SSH server %s port %d shows no host key of the kind %s records for it "
                       "(%s): someone may be intercepting the connection, or the server's keys "
                       "were changed; if you know they were, remove the old entries from %s",
                       s->host, s->port, s->known_hosts, kinds, s->known_hosts);
            goto fail;
        }
        pf_err_set(err, PF_ECONN, "SSH handshake with %s port %d failed: %s", s->host, s->port,
                   ssh_msg(c->ssh));
        err->retryable = true;
        goto fail;
    }
    if (check_host_key(s, c->ssh, err) < 0 || authenticate(s, c->ssh, err) < 0)
        goto fail;
    log_transport(s, c->ssh);
    c->sftp = libssh2_sftp_init(c->ssh);
    if (!c->sftp) {
        int e = libssh2_session_last_errno(c->ssh);
        pf_err_set(err, PF_ECONN, "cannot start SFTP on %s: %s (is the sftp subsystem enabled?)",
                   s->host, ssh_msg(c->ssh));
        err->retryable = e == LIBSSH2_ERROR_SOCKET_RECV || e == LIBSSH2_ERROR_SOCKET_SEND ||
                         e == LIBSSH2_ERROR_TIMEOUT || e == LIBSSH2_ERROR_SOCKET_DISCONNECT;
        goto fail;
    }
    return 0;
fail:
    conn_close(c);
    return -1;
}

/* Takes a session for this thread, connecting it when needed. */
static conn *conn_get(sftp_store *s, pf_err *err)
{
    conn *c = NULL;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        conn *idle = NULL;
        for (int i = 0; i < s->nconn; i++) {
            if (s->conns[i].busy)
                continue;
            if (s->conns[i].sftp) {
                idle = &s->conns[i];
                break;
            }
            if (!idle)
                idle = &s->conns[i];
        }
        if (idle) {
            c = idle;
            c->busy = 1;
            break;
        }
        pthread_cond_wait(&s->cond, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    if (!c->sftp && conn_open(s, c, err) < 0) {
        pthread_mutex_lock(&s->mu);
        c->busy = 0;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    return c;
}

static void conn_put(sftp_store *s, conn *c, int broken)
{
    if (broken)
        conn_close(c);
    pthread_mutex_lock(&s->mu);
    c->busy = 0;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

/* Classifies the failure of an SFTP call on c: fills err and returns 1 when the session
 * is unusable (it is then dropped and the error is retryable), else 0. sftp_status
 * receives the SFTP status code (0 when the failure was not an SFTP status). */
static int sftp_fail(sftp_store *s, conn *c, const char *what, const char *path,
                     unsigned long *sftp_status, pf_err *err)
{
    int e = libssh2_session_last_errno(c->ssh);
    *sftp_status = 0;
    if (e == LIBSSH2_ERROR_SFTP_PROTOCOL) {
        unsigned long st = libssh2_sftp_last_error(c->sftp);
        *sftp_status = st;
        switch (st) {
        case LIBSSH2_FX_NO_SUCH_FILE:
        case LIBSSH2_FX_NO_SUCH_PATH:
            pf_err_set(err, PF_ENOTFOUND, "%s %s on %s: no such file", what, path, s->host);
            return 0;
        case LIBSSH2_FX_PERMISSION_DENIED:
        case LIBSSH2_FX_WRITE_PROTECT:
            pf_err_set(err, PF_EIO, "%s %s on %s: permission denied", what, path, s->host);
            return 0;
        case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM:
        case LIBSSH2_FX_QUOTA_EXCEEDED:
            pf_err_set(err, PF_EIO, "%s %s on %s: no space left (or quota exceeded)", what, path,
                       s->host);
            return 0;
        case LIBSSH2_FX_NO_CONNECTION:
        case LIBSSH2_FX_CONNECTION_LOST:
            break;
        default:
            pf_err_set(err, PF_EIO, "%s %s on %s failed (SFTP status %lu)", what, path, s->host,
                       st);
            return 0;
        }
    }
    pf_err_set(err, PF_ECONN, "%s %s on %s: connection failed: %s", what, path, s->host,
               ssh_msg(c->ssh));
    err->retryable = true;
    return 1;
}

/* Closes an SFTP handle, which libssh2 frees only when the close completes or fails: a close
 * on a dead session must still be made, or the handle leaks. On a session that is hung rather
 * than reset, the close would wait for the server's reply until the timeout and then give up
 * without freeing, so a broken session's socket is shut down first: the close then fails at
 * once and frees the handle. */
static void handle_close(conn *c, LIBSSH2_SFTP_HANDLE *h, int broken)
{
    if (broken && c->sock >= 0)
        shutdown(c->sock, SHUT_RDWR);
    libssh2_sftp_close_handle(h);
}

/* Creates each missing directory on the way to path's last component. Failures are
 * ignored: the operation that needed them reports what is really wrong. */
static void mkdir_parents(conn *c, const char *path)
{
    char *p = pf_xstrdup(path);
    for (char *slash = strchr(p + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = 0;
        libssh2_sftp_mkdir_ex(c->sftp, p, (unsigned)strlen(p), 0700);
        *slash = '/';
    }
    free(p);
}

static int write_all(LIBSSH2_SFTP_HANDLE *h, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = libssh2_sftp_write(h, p, n > SFTP_IO_CHUNK ? SFTP_IO_CHUNK : n);
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sftp_put(pf_store *st, const char *key, const void *data, size_t len, pf_err *err)
{
    sftp_store *s = st->impl;
    char *path = NULL, *tmp = NULL;
    LIBSSH2_SFTP_HANDLE *h = NULL;
    int rc = -1, broken = 0, tmp_made = 0;
    unsigned long status;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    conn *c = conn_get(s, err);
    if (!c)
        return pf_err_prefix(err, "put %s", key);
    path = remote_path(s, key);
    char rnd[17];
    pf_store_rand_hex(rnd, 8);
    size_t tn = strlen(path) + 6 + sizeof rnd;
    tmp = malloc(tn);
    if (!tmp)
        abort();
    snprintf(tmp, tn, "%s.tmp-%s", path, rnd);
    const long flags = LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL;
    for (int attempt = 0; attempt < 2 && !h; attempt++) {
        h = libssh2_sftp_open_ex(c->sftp, tmp, (unsigned)strlen(tmp), flags, 0600,
                                 LIBSSH2_SFTP_OPENFILE);
        if (h)
            break;
        broken = sftp_fail(s, c, "create", tmp, &status, err);
        if (broken || err->code != PF_ENOTFOUND || attempt == 1)
            goto out;
        mkdir_parents(c, tmp); /* the folder (data/ab/) is new */
    }
    tmp_made = 1;
    if (write_all(h, data, len) < 0) {
        broken = sftp_fail(s, c, "write", tmp, &status, err);
        goto out;
    }
    /* Durability where the server can give it; OpenSSH offers fsync@openssh.com. */
    if (libssh2_sftp_fsync(h) < 0) {
        int e = libssh2_session_last_errno(c->ssh);
        if (e != LIBSSH2_ERROR_SFTP_PROTOCOL ||
            libssh2_sftp_last_error(c->sftp) != LIBSSH2_FX_OP_UNSUPPORTED) {
            broken = sftp_fail(s, c, "sync", tmp, &status, err);
            if (broken || status != LIBSSH2_FX_FAILURE)
                goto out;
        }
    }
    int crc = libssh2_sftp_close_handle(h);
    h = NULL;
    if (crc < 0) {
        broken = sftp_fail(s, c, "write", tmp, &status, err);
        goto out;
    }
    /* Rename over the key; where the server refuses to replace (SFTP v3), remove the old
     * object first. Several writers may race on one key: try a few times. */
    for (int attempt = 0;; attempt++) {
        if (libssh2_sftp_rename_ex(c->sftp, tmp, (unsigned)strlen(tmp), path,
                                   (unsigned)strlen(path),
                                   LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC |
                                       LIBSSH2_SFTP_RENAME_NATIVE) == 0)
            break;
        broken = sftp_fail(s, c, "rename", tmp, &status, err);
        if (broken || attempt == 20)
            goto out;
        if (attempt > 0) {
            /* Another writer won the race in between: let it finish. */
            char r[3];
            pf_store_rand_hex(r, 1);
            usleep(1000u * (1u + (unsigned)strtoul(r, NULL, 16) % 16u));
        }
        if (libssh2_sftp_unlink_ex(c->sftp, path, (unsigned)strlen(path)) < 0) {
            pf_err err2 = {0};
            broken = sftp_fail(s, c, "replace", path, &status, &err2);
            if (broken) {
                *err = err2;
                goto out;
            }
        }
    }
    tmp_made = 0;
    rc = 0;
out:
    if (h)
        handle_close(c, h, broken);
    if (tmp_made && !broken)
        libssh2_sftp_unlink_ex(c->sftp, tmp, (unsigned)strlen(tmp));
    conn_put(s, c, broken);
    if (rc < 0 && err->code == PF_ENOTFOUND)
        err->code = PF_EIO; /* a put never means "no such object" */
    free(path);
    free(tmp);
    return rc;
}

static int sftp_get(pf_store *st, const char *key, uint64_t off, uint64_t len, pf_buf *out,
                    pf_err *err)
{
    sftp_store *s = st->impl;
    LIBSSH2_SFTP_HANDLE *h = NULL;
    int rc = -1, broken = 0;
    unsigned long status;
    size_t start = out->len;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    conn *c = conn_get(s, err);
    if (!c)
        return pf_err_prefix(err, "get %s", key);
    char *path = remote_path(s, key);
    h = libssh2_sftp_open_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_FXF_READ, 0,
                             LIBSSH2_SFTP_OPENFILE);
    if (!h) {
        broken = sftp_fail(s, c, "open", path, &status, err);
        if (err->code == PF_ENOTFOUND)
            pf_err_set(err, PF_ENOTFOUND, "object %s not found on %s", key, s->host);
        goto out;
    }
    LIBSSH2_SFTP_ATTRIBUTES a;
    if (libssh2_sftp_fstat_ex(h, &a, 0) < 0) {
        broken = sftp_fail(s, c, "stat", path, &status, err);
        goto out;
    }
    if (!(a.flags & LIBSSH2_SFTP_ATTR_SIZE)) {
        pf_err_set(err, PF_EIO, "stat %s on %s: server did not say its size", path, s->host);
        goto out;
    }
    uint64_t n;
    if (pf_store_check_range(key, a.filesize, off, len, &n, err) < 0)
        goto out;
    if (n > SIZE_MAX - 1 - out->len) {
        pf_err_set(err, PF_EIO, "object %s: %llu bytes do not fit in memory", key,
                   (unsigned long long)n);
        goto out;
    }
    pf_buf_reserve(out, (size_t)n);
    libssh2_sftp_seek64(h, off);
    uint64_t done = 0;
    while (done < n) {
        /* libssh2_sftp_read asks the server for up to 4 times the buffer it is given (its
         * read-ahead) and throws away what is left when the handle closes: a range read
         * given the whole range moved ~4x the bytes (restore of 1 GiB: 3.6 GB on the
         * wire). A quarter of what is left keeps the read-ahead inside the range (down to
         * 8 KiB, so the tail takes few calls). */
        uint64_t left = n - done;
        uint64_t want64 = (left + 3) / 4;
        if (want64 < 8192)
            want64 = left < 8192 ? left : 8192;
        size_t want = want64 > SFTP_IO_CHUNK ? SFTP_IO_CHUNK : (size_t)want64;
        ssize_t r = libssh2_sftp_read(h, (char *)out->data + out->len, want);
        if (r < 0) {
            broken = sftp_fail(s, c, "read", path, &status, err);
            goto out;
        }
        if (r == 0) {
            pf_err_set(err, PF_ECORRUPT, "object %s shrank while being read", key);
            goto out;
        }
        if ((size_t)r > want) {
            pf_err_set(err, PF_EIO, "read %s: server sent more than asked", path);
            broken = 1;
            goto out;
        }
        out->len += (size_t)r;
        done += (uint64_t)r;
    }
    out->data[out->len] = 0;
    rc = 0;
out:
    if (rc < 0 && out->data) {
        out->len = start;
        out->data[start] = 0;
    }
    if (h)
        handle_close(c, h, broken);
    conn_put(s, c, broken);
    free(path);
    return rc;
}

static int sftp_stat(pf_store *st, const char *key, uint64_t *size, pf_err *err)
{
    sftp_store *s = st->impl;
    int rc = -1, broken = 0;
    unsigned long status;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    conn *c = conn_get(s, err);
    if (!c)
        return pf_err_prefix(err, "stat %s", key);
    char *path = remote_path(s, key);
    LIBSSH2_SFTP_ATTRIBUTES a;
    if (libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_STAT, &a) < 0) {
        broken = sftp_fail(s, c, "stat", path, &status, err);
        if (err->code == PF_ENOTFOUND)
            pf_err_set(err, PF_ENOTFOUND, "object %s not found on %s", key, s->host);
        goto out;
    }
    if ((a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && !LIBSSH2_SFTP_S_ISREG(a.permissions)) {
        pf_err_set(err, PF_ENOTFOUND, "object %s not found on %s (not a regular file)", key,
                   s->host);
        goto out;
    }
    if (!(a.flags & LIBSSH2_SFTP_ATTR_SIZE)) {
        pf_err_set(err, PF_EIO, "stat %s on %s: server did not say its size", path, s->host);
        goto out;
    }
    *size = a.filesize;
    rc = 0;
out:
    conn_put(s, c, broken);
    free(path);
    return rc;
}

static int sftp_remove(pf_store *st, const char *key, pf_err *err)
{
    sftp_store *s = st->impl;
    int rc = -1, broken = 0;
    unsigned long status;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    conn *c = conn_get(s, err);
    if (!c)
        return pf_err_prefix(err, "remove %s", key);
    char *path = remote_path(s, key);
    if (libssh2_sftp_unlink_ex(c->sftp, path, (unsigned)strlen(path)) < 0) {
        broken = sftp_fail(s, c, "remove", path, &status, err);
        if (err->code == PF_ENOTFOUND)
            pf_err_set(err, PF_ENOTFOUND, "object %s not found on %s", key, s->host);
        goto out;
    }
    rc = 0;
out:
    conn_put(s, c, broken);
    free(path);
    return rc;
}

struct found {
    char *key;
    uint64_t size;
};

struct listing {
    struct found *v;
    size_t n, cap;
    const char *prefix;
    size_t prefix_len;
    /* For sweep_tmp: list only temporary files last modified before tmp_before. */
    int tmp_only;
    int64_t tmp_before;
};

static void listing_add(struct listing *l, const char *key, uint64_t size)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v)
            abort();
    }
    l->v[l->n].key = pf_xstrdup(key);
    l->v[l->n].size = size;
    l->n++;
}

/* Reads directory rel ("" or "a/b/") into l, recursing into subdirectories that can hold
 * keys under the prefix. Returns 0, or -1 with *broken set when the session died. */
static int walk(sftp_store *s, conn *c, pf_buf *rel, struct listing *l, int *broken, pf_err *err)
{
    unsigned long status;
    char *dir =
        rel->len ? remote_path(s, (char *)rel->data) : pf_xstrdup(s->root[0] ? s->root : ".");
    LIBSSH2_SFTP_HANDLE *h =
        libssh2_sftp_open_ex(c->sftp, dir, (unsigned)strlen(dir), 0, 0, LIBSSH2_SFTP_OPENDIR);
    char **subdirs = NULL;
    size_t nsub = 0, capsub = 0, rlen = rel->len;
    int rc = -1;
    if (!h) {
        *broken = sftp_fail(s, c, "list", dir, &status, err);
        if (!*broken && err->code == PF_ENOTFOUND) {
            rc = 0; /* nothing stored there yet: an empty listing, and no error left behind */
            pf_err_clear(err);
        }
        goto out;
    }
    char name[1024];
    LIBSSH2_SFTP_ATTRIBUTES a;
    for (;;) {
        int r = libssh2_sftp_readdir_ex(h, name, sizeof name, NULL, 0, &a);
        if (r == 0)
            break;
        if (r < 0) {
            *broken = sftp_fail(s, c, "list", dir, &status, err);
            goto out;
        }
        if (!strcmp(name, ".") || !strcmp(name, ".."))
            continue;
        if (pf_store_is_tmp_name(name) != 0) {
            if (l->tmp_only && (a.flags & LIBSSH2_SFTP_ATTR_ACMODTIME) &&
                (a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && LIBSSH2_SFTP_S_ISREG(a.permissions) &&
                (int64_t)a.mtime < l->tmp_before) {
                rel->len = rlen;
                pf_buf_append_str(rel, name);
                listing_add(l, (char *)rel->data,
                            a.flags & LIBSSH2_SFTP_ATTR_SIZE ? a.filesize : 0);
            }
            continue;
        }
        rel->len = rlen;
        pf_buf_append_str(rel, name);
        size_t cmp = rel->len < l->prefix_len ? rel->len : l->prefix_len;
        if (memcmp(rel->data, l->prefix, cmp) != 0)
            continue;
        if (!(a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS))
            continue;
        if (LIBSSH2_SFTP_S_ISDIR(a.permissions)) {
            if (nsub == capsub) {
                capsub = capsub ? capsub * 2 : 16;
                subdirs = realloc(subdirs, capsub * sizeof *subdirs);
                if (!subdirs)
                    abort();
            }
            subdirs[nsub++] = pf_xstrdup(name);
        } else if (LIBSSH2_SFTP_S_ISREG(a.permissions) && rel->len >= l->prefix_len &&
                   !l->tmp_only) {
            listing_add(l, (char *)rel->data, a.flags & LIBSSH2_SFTP_ATTR_SIZE ? a.filesize : 0);
        }
    }
    libssh2_sftp_close_handle(h);
    h = NULL;
    for (size_t i = 0; i < nsub; i++) {
        rel->len = rlen;
        pf_buf_printf(rel, "%s/", subdirs[i]);
        if (walk(s, c, rel, l, broken, err) < 0)
            goto out;
    }
    rc = 0;
out:
    rel->len = rlen;
    if (rel->data)
        rel->data[rlen] = 0;
    if (h)
        handle_close(c, h, *broken);
    for (size_t i = 0; i < nsub; i++)
        free(subdirs[i]);
    free(subdirs);
    free(dir);
    return rc;
}

/* The whole listing is read before the first callback, so the session is free again and
 * a callback may use the store (even with one connection). */
static int sftp_list(pf_store *st, const char *prefix, pf_store_list_cb cb, void *ctx, pf_err *err)
{
    sftp_store *s = st->impl;
    struct listing l = {0};
    pf_buf rel = PF_BUF_INIT;
    int broken = 0, rc = -1;
    if (!prefix)
        prefix = "";
    if (pf_store_check_prefix(prefix, err) < 0)
        return -1;
    l.prefix = prefix;
    l.prefix_len = strlen(prefix);
    conn *c = conn_get(s, err);
    if (!c)
        return pf_err_prefix(err, "list %s", prefix);
    const char *slash = strrchr(prefix, '/');
    pf_buf_append_str(&rel, "");
    if (slash)
        pf_buf_append(&rel, prefix, (size_t)(slash - prefix + 1));
    rc = walk(s, c, &rel, &l, &broken, err);
    conn_put(s, c, broken);
    for (size_t i = 0; rc == 0 && i < l.n; i++)
        rc = cb(l.v[i].key, l.v[i].size, ctx, err);
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i].key);
    free(l.v);
    pf_buf_free(&rel);
    return rc;
}

/* Lists the old temporary files (see sftp_put) over the whole tree, then removes them. */
static int sftp_sweep_tmp(pf_store *st, int64_t before, uint64_t *removed, uint64_t *bytes,
                          pf_err *err)
{
    sftp_store *s = st->impl;
    struct listing l = {0};
    pf_buf rel = PF_BUF_INIT;
    int broken = 0, rc = -1;
    unsigned long status;
    l.prefix = "";
    l.tmp_only = 1;
    l.tmp_before = before;
    conn *c = conn_get(s, err);
    if (!c)
        return pf_err_prefix(err, "sweep temporary files");
    pf_buf_append_str(&rel, "");
    rc = walk(s, c, &rel, &l, &broken, err);
    for (size_t i = 0; rc == 0 && !broken && i < l.n; i++) {
        char *path = remote_path(s, l.v[i].key);
        if (libssh2_sftp_unlink_ex(c->sftp, path, (unsigned)strlen(path)) < 0) {
            broken = sftp_fail(s, c, "remove", path, &status, err);
            if (err->code != PF_ENOTFOUND)
                rc = -1;
            else
                pf_err_clear(err);
        } else {
            (*removed)++;
            *bytes += l.v[i].size;
        }
        free(path);
    }
    conn_put(s, c, broken);
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i].key);
    free(l.v);
    pf_buf_free(&rel);
    return rc;
}

static void sftp_free(pf_store *st)
{
    sftp_store *s = st->impl;
    if (!s)
        return;
    for (int i = 0; i < s->nconn; i++)
        conn_close(&s->conns[i]);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->hk_mu);
    pthread_cond_destroy(&s->cond);
    free(s->host);
    free(s->user);
    free(s->root);
    free(s->ssh_key);
    free(s->known_hosts);
    free(s);
}

static const struct pf_store_ops sftp_ops = {
    .name = "sftp",
    .put = sftp_put,
    .get = sftp_get,
    .stat = sftp_stat,
    .list = sftp_list,
    .remove = sftp_remove,
    .free = sftp_free,
    .sweep_tmp = sftp_sweep_tmp,
};

/* Splits sftp://[user@]host[:port]/path into s's fields. */
static int parse_url(sftp_store *s, const char *url, pf_err *err)
{
    const char *p = url + 7, *slash = strchr(p, '/');
    if (!slash)
        return pf_err_set(err, PF_EUSAGE,
                          "repository %s: no path after the host (write "
                          "sftp://[user@]host[:port]/path)",
                          url);
    char *auth = strndup(p, (size_t)(slash - p));
    if (!auth)
        abort();
    char *hostport = auth, *at = strrchr(auth, '@');
    int rc = -1;
    if (at) {
        *at = 0;
        if (strchr(auth, ':')) {
            pf_err_set(err, PF_EUSAGE,
                       "repository URL must not hold a password: use an SSH key (--ssh-key or "
                       "the SSH agent)");
            goto out;
        }
        s->user = pf_xstrdup(auth);
        hostport = at + 1;
    }
    char *portp = NULL;
    if (hostport[0] == '[') { /* [IPv6]:port */
        char *close = strchr(hostport, ']');
        if (!close) {
            pf_err_set(err, PF_EUSAGE, "repository %s: unclosed '[' in the host", url);
            goto out;
        }
        *close = 0;
        s->host = pf_xstrdup(hostport + 1);
        if (close[1] == ':')
            portp = close + 2;
    } else {
        char *colon = strchr(hostport, ':');
        if (colon) {
            *colon = 0;
            portp = colon + 1;
        }
        s->host = pf_xstrdup(hostport);
    }
    if (!s->host[0]) {
        pf_err_set(err, PF_EUSAGE, "repository %s: no host", url);
        goto out;
    }
    s->port = 22;
    if (portp) {
        char *end;
        long v = strtol(portp, &end, 10);
        if (!*portp || *end || v < 1 || v > 65535) {
            pf_err_set(err, PF_EUSAGE, "repository %s: bad port '%s'", url, portp);
            goto out;
        }
        s->port = (int)v;
    }
    if (!s->user) {
        const char *u = getenv("USER");
        struct passwd *pw = getpwuid(getuid());
        s->user = pf_xstrdup(u && *u ? u : pw ? pw->pw_name : "root");
    }
    /* "/~/x" is relative to the login directory; anything else is absolute. */
    if (!strncmp(slash, "/~/", 3) || !strcmp(slash, "/~"))
        s->root = pf_xstrdup(slash[2] ? slash + 3 : "");
    else
        s->root = pf_xstrdup(slash);
    size_t n = strlen(s->root);
    while (n > 1 && s->root[n - 1] == '/')
        s->root[--n] = 0;
    rc = 0;
out:
    free(auth);
    return rc;
}

pf_store *pf_store_sftp_new(const char *url, const pf_store_opts *opts, pf_err *err)
{
    static const pf_store_opts none;
    if (!opts)
        opts = &none;
    pthread_once(&ssh_once, ssh_init_once);
    if (ssh_init_rc != 0) {
        pf_err_set(err, PF_EIO, "cannot initialise libssh2");
        return NULL;
    }
    if (strncmp(url, "sftp://", 7) != 0) {
        pf_err_set(err, PF_EUSAGE, "%s is not an sftp:// URL", url);
        return NULL;
    }
    sftp_store *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->hk_mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->nconn = opts->connections > 0 ? opts->connections : SFTP_DEFAULT_CONNECTIONS;
    if (s->nconn > SFTP_MAX_CONNECTIONS)
        s->nconn = SFTP_MAX_CONNECTIONS;
    for (int i = 0; i < SFTP_MAX_CONNECTIONS; i++)
        s->conns[i].sock = -1;
    if (parse_url(s, url, err) < 0)
        goto fail;
    if (opts->ssh_key && *opts->ssh_key)
        s->ssh_key = pf_xstrdup(opts->ssh_key);
    if (opts->known_hosts && *opts->known_hosts) {
        s->known_hosts = pf_xstrdup(opts->known_hosts);
    } else {
        const char *home = getenv("HOME");
        struct passwd *pw = home ? NULL : getpwuid(getuid());
        if (!home)
            home = pw ? pw->pw_dir : "/";
        size_t n = strlen(home) + 32;
        s->known_hosts = malloc(n);
        if (!s->known_hosts)
            abort();
        snprintf(s->known_hosts, n, "%s/.ssh/known_hosts", home);
    }
    s->accept_new = opts->ssh_accept_new;
    s->timeout = pf_store_env_long("PERMAFROST_NET_TIMEOUT", 60);
    if (s->timeout < 1)
        s->timeout = 60;
    pf_store *st = pf_store_alloc(&sftp_ops, s, url);
    st->props = (pf_store_props){.remote = true, .connections = s->nconn};
    return st;
fail : {
    pf_store tmp = {.ops = &sftp_ops, .impl = s};
    sftp_free(&tmp);
    return NULL;
}
}
