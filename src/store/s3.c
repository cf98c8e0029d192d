/* The S3 driver: any S3-compatible service over libcurl, signed with curl's built-in AWS
 * SigV4. URL: s3:http(s)://endpoint[:port]/bucket[/prefix]; keys live under prefix/.
 * Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN);
 * the region from opts->s3_region, AWS_DEFAULT_REGION, AWS_REGION, else us-east-1.
 *
 * Signing with curl 7.88 (the oldest we support) constrains how requests are built: curl
 * signs the URL path and query exactly as given and hashes only CURLOPT_POSTFIELDS as the
 * payload. So every body goes through POSTFIELDS (with the method set explicitly), we send
 * x-amz-content-sha256 ourselves with the same hash, and every query string is built here
 * already in canonical form: parameters sorted, values percent-encoded the AWS way. Keys
 * are restricted to [A-Za-z0-9._~-/] (internal.h), which need no encoding in a path.
 *
 * Buckets are never created: an operation on a missing bucket fails with PF_ENOREPO and
 * "bucket X does not exist: create it first", because how a bucket should be made (region,
 * object lock, lifecycle, who may read it) is the operator's decision, not a backup tool's.
 *
 * S3's DELETE succeeds on a missing key; the contract wants PF_ENOTFOUND, so remove does a
 * HEAD first (a key removed by someone else in between is then reported as removed).
 *
 * Test overrides: PERMAFROST_S3_MAX_KEYS (list page size), PERMAFROST_S3_MULTIPART_THRESHOLD
 * and PERMAFROST_S3_PART_SIZE (bytes), PERMAFROST_NET_TIMEOUT (seconds a transfer may stall
 * before it is abandoned as a retryable failure). */
#include "store/store.h"
#include "store/internal.h"
#include "store/s3_list.h"

#include "common/log.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/s3.h"

#define S3_DEFAULT_THRESHOLD (64ull << 20)
#define S3_DEFAULT_PART_SIZE (16ull << 20)
#define S3_MAX_PARTS 10000
#define S3_ERRBODY_MAX (64u << 10)
#define S3_LISTBODY_MAX (16u << 20)
#define S3_POOL_MAX 16

typedef struct s3_store {
    char *scheme;   /* "http" or "https" */
    char *hostport; /* "host[:port]" */
    char *bucket;
    char *prefix; /* "" or "some/prefix/" */
    char *sigv4;  /* "aws:amz:REGION:s3" */
    char *access_key, *secret_key, *session_token;
    int virtual_host;
    int max_keys;
    uint64_t threshold, part_size;
    int connections; /* parts of one upload sent at once */
    long timeout;
    pthread_mutex_t mu; /* guards pool */
    CURL *pool[S3_POOL_MAX];
    int npool;
} s3_store;

static char *xstrndup(const char *p, size_t n);

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Reused handles keep their connections alive between calls. */
static CURL *handle_get(s3_store *s)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->npool > 0)
        h = s->pool[--s->npool];
    pthread_mutex_unlock(&s->mu);
    if (h)
        curl_easy_reset(h);
    else
        h = curl_easy_init();
    return h;
}

static void handle_put(s3_store *s, CURL *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&s->mu);
    if (s->npool < S3_POOL_MAX) {
        s->pool[s->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (h)
        curl_easy_cleanup(h);
}

/* Percent-encodes the AWS way: everything but A-Za-z0-9-_.~ (and '/' when keep_slash). */
static void aws_encode(pf_buf *b, const char *s, size_t n, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            pf_buf_u8(b, c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            pf_buf_append(b, e, 3);
        }
    }
    if (b->data)
        b->data[b->len] = 0;
}

/* ---- minimal XML reading: S3 replies are small, flat and machine-made. ---- */

/* Finds the text of the first <tag>...</tag> in [p, p+n). Returns 1 and sets *v, *vn, and
 * *end (just past the closing tag) when found, else 0. */
static int xml_elem(const char *p, size_t n, const char *tag, const char **v, size_t *vn,
                    const char **end)
{
    char open[64], close[64];
    int on = snprintf(open, sizeof open, "<%s>", tag);
    int cn = snprintf(close, sizeof close, "</%s>", tag);
    if (on <= 0 || cn <= 0 || (size_t)on >= sizeof open || (size_t)cn >= sizeof close)
        return 0;
    const char *a = memmem(p, n, open, (size_t)on);
    if (!a)
        return 0;
    a += on;
    const char *b = memmem(a, n - (size_t)(a - p), close, (size_t)cn);
    if (!b)
        return 0;
    *v = a;
    *vn = (size_t)(b - a);
    if (end)
        *end = b + cn;
    return 1;
}

/* Appends the text [v, v+n) to out with XML entities decoded. Returns -1 on a malformed or
 * unsupported entity, or one that decodes to NUL or beyond ASCII range we can represent. */
static int xml_unescape(pf_buf *out, const char *v, size_t n)
{
    static const struct {
        const char *name;
        char c;
    } ents[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    size_t i = 0;
    while (i < n) {
        if (v[i] != '&') {
            if (v[i] == 0)
                return -1;
            pf_buf_u8(out, (uint8_t)v[i++]);
            continue;
        }
        size_t rest = n - i - 1;
        const char *e = v + i + 1;
        int done = 0;
        for (size_t k = 0; k < sizeof ents / sizeof ents[0]; k++) {
            size_t l = strlen(ents[k].name);
            if (rest >= l && memcmp(e, ents[k].name, l) == 0) {
                pf_buf_u8(out, (uint8_t)ents[k].c);
                i += 1 + l;
                done = 1;
                break;
            }
        }
        if (done)
            continue;
        /* Numeric: &#NNN; or &#xHH; -- accepted for 1..127 only (keys are ASCII). */
        if (rest >= 3 && e[0] == '#') {
            size_t j = 1;
            int base = 10;
            if (e[1] == 'x' || e[1] == 'X') {
                base = 16;
                j = 2;
            }
            unsigned long cp = 0;
            size_t digits = 0;
            while (j < rest && e[j] != ';' && digits < 8) {
                char c = e[j];
                int d = (c >= '0' && c <= '9')                 ? c - '0'
                        : (base == 16 && c >= 'a' && c <= 'f') ? c - 'a' + 10
                        : (base == 16 && c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                               : -1;
                if (d < 0)
                    return -1;
                cp = cp * (unsigned long)base + (unsigned long)d;
                j++;
                digits++;
            }
            if (j >= rest || e[j] != ';' || digits == 0 || cp == 0 || cp > 127)
                return -1;
            pf_buf_u8(out, (uint8_t)cp);
            i += 1 + j + 1;
            continue;
        }
        return -1;
    }
    if (out->data)
        out->data[out->len] = 0;
    return 0;
}

/* Copies the decoded text of <tag> into a fixed buffer; empty string when absent. */
static void xml_text(const pf_buf *body, const char *tag, char *dst, size_t dn)
{
    const char *v;
    size_t vn;
    dst[0] = 0;
    if (!body->data || !xml_elem((const char *)body->data, body->len, tag, &v, &vn, NULL))
        return;
    pf_buf t = PF_BUF_INIT;
    if (xml_unescape(&t, v, vn) == 0 && t.data)
        snprintf(dst, dn, "%s", (char *)t.data);
    pf_buf_free(&t);
}

/* ---- one HTTP request ---- */

typedef struct s3_req {
    const char *method;
    const char *key;   /* object key under the prefix; NULL for the bucket itself */
    const char *query; /* canonical query string or NULL */
    const void *body;  /* sent for PUT/POST (may be NULL with body_len 0) */
    size_t body_len;
    const char *range;          /* "bytes=a-b" or NULL */
    const char *content_type;   /* of a body; NULL: application/octet-stream */
    const char *const *headers; /* more header lines ("Name: value"), NULL-terminated; or NULL */
} s3_req;

typedef struct s3_resp {
    long status;
    curl_off_t content_length; /* -1 when the reply had none */
    pf_buf *data;              /* a 2xx body goes here (appended) */
    uint64_t cap;              /* most bytes accepted into data; 0 = no limit */
    int is_range;              /* the request asked for bytes from range_off */
    uint64_t range_off;
    uint64_t skipped; /* bytes dropped from a 200 reply to a range request */
    size_t got;       /* bytes appended to data */
    int overflow;     /* the server sent more than cap */
    pf_buf err_body;  /* a non-2xx body, up to S3_ERRBODY_MAX */
    char etag[256];
    char content_type[256];
    int64_t cr_start; /* first byte of Content-Range, -1 when absent */
    CURL *h;
} s3_resp;

static size_t on_write(char *p, size_t sz, size_t nm, void *ud)
{
    s3_resp *r = ud;
    size_t n = sz * nm, total = n;
    long status = 0;
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300 || !r->data) {
        size_t room = S3_ERRBODY_MAX - r->err_body.len;
        pf_buf_append(&r->err_body, p, n < room ? n : room);
        return total;
    }
    if (r->is_range && status == 200) {
        /* The server ignored Range and sends the whole object: keep only our slice. */
        if (r->skipped < r->range_off) {
            uint64_t drop = r->range_off - r->skipped;
            if (drop > n)
                drop = n;
            r->skipped += drop;
            p += drop;
            n -= (size_t)drop;
        }
        if (r->cap && (uint64_t)r->got + n > r->cap)
            n = (size_t)(r->cap - r->got);
    } else if (r->cap && (uint64_t)r->got + n > r->cap) {
        /* Some servers (s3rver for "bytes=0-0") send more than the range asked for; when
         * Content-Range shows it starts where we asked, the head of it is what we want. */
        if (status != 206 || r->cr_start < 0 || (uint64_t)r->cr_start != r->range_off) {
            r->overflow = 1;
            return 0;
        }
        n = (size_t)(r->cap - r->got);
    }
    pf_buf_append(r->data, p, n);
    r->got += n;
    return total;
}

/* Copies the value of a header line [p, p+n) whose name takes `from` bytes, trimmed; left
 * empty when it does not fit. */
static void header_value(const char *p, size_t n, size_t from, char *dst, size_t dn)
{
    size_t i = from;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    size_t j = n;
    while (j > i && (p[j - 1] == '\r' || p[j - 1] == '\n' || p[j - 1] == ' '))
        j--;
    if (j - i < dn) {
        memcpy(dst, p + i, j - i);
        dst[j - i] = 0;
    }
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    s3_resp *r = ud;
    size_t n = sz * nm;
    if (n > 5 && strncmp(p, "HTTP/", 5) == 0) {
        r->etag[0] = 0; /* a new response (after 100 Continue or a redirect) */
        r->content_type[0] = 0;
        r->cr_start = -1;
    }
    if (n > 20 && strncasecmp(p, "content-range: bytes ", 21) == 0) {
        uint64_t v = 0;
        size_t i = 21, digits = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9' && digits < 19) {
            v = v * 10 + (uint64_t)(p[i++] - '0');
            digits++;
        }
        r->cr_start = digits && i < n && p[i] == '-' ? (int64_t)v : -1;
    }
    if (n > 5 && strncasecmp(p, "etag:", 5) == 0)
        header_value(p, n, 5, r->etag, sizeof r->etag);
    if (n > 13 && strncasecmp(p, "content-type:", 13) == 0)
        header_value(p, n, 13, r->content_type, sizeof r->content_type);
    return n;
}

static void build_url(s3_store *s, const s3_req *q, pf_buf *url)
{
    if (s->virtual_host)
        pf_buf_printf(url, "%s://%s.%s/", s->scheme, s->bucket, s->hostport);
    else
        pf_buf_printf(url, "%s://%s/%s%s", s->scheme, s->hostport, s->bucket, q->key ? "/" : "");
    if (q->key) {
        aws_encode(url, s->prefix, strlen(s->prefix), 1);
        aws_encode(url, q->key, strlen(q->key), 1);
    }
    if (q->query)
        pf_buf_printf(url, "?%s", q->query);
}

/* Maps a failed transfer. Everything that can heal by itself is retryable. */
static int curl_error(s3_store *s, CURLcode rc, const char *errbuf, pf_err *err)
{
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    int retry = 1, code = PF_ECONN;
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_OUT_OF_MEMORY:
        retry = 0;
        break;
    default:
        break;
    }
    pf_err_set(err, code, "S3 endpoint %s://%s: %s", s->scheme, s->hostport, why);
    err->retryable = retry;
    return -1;
}

/* Performs one request. Returns 0 when an HTTP status arrived (in resp->status), -1 on a
 * transport failure (err filled). */
static int s3_perform(s3_store *s, const s3_req *q, s3_resp *resp, pf_err *err)
{
    int rc = -1;
    struct curl_slist *hdrs = NULL;
    pf_buf url = PF_BUF_INIT, line = PF_BUF_INIT;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *h = handle_get(s);
    if (!h) {
        pf_err_set(err, PF_EIO, "S3: cannot create a curl handle");
        goto out;
    }
    resp->h = h;
    resp->cr_start = -1;
    build_url(s, q, &url);

    /* The payload hash curl signs is SHA-256 of POSTFIELDS; announce the same one. */
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(q->body ? q->body : (const void *)"", q->body_len, md);
    pf_buf_append_str(&line, "x-amz-content-sha256: ");
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        pf_buf_printf(&line, "%02x", md[i]);
    hdrs = curl_slist_append(hdrs, (char *)line.data);
    if (s->session_token) {
        pf_buf_reset(&line);
        pf_buf_printf(&line, "x-amz-security-token: %s", s->session_token);
        hdrs = curl_slist_append(hdrs, (char *)line.data);
    }
    if (q->range) {
        pf_buf_reset(&line);
        pf_buf_printf(&line, "Range: %s", q->range);
        hdrs = curl_slist_append(hdrs, (char *)line.data);
    }
    int has_body = !strcmp(q->method, "PUT") || !strcmp(q->method, "POST");
    if (has_body) {
        /* No "Expect:" override here: curl 7.88 signs the emptied header and S3 then
         * rejects the signature. */
        pf_buf_reset(&line);
        pf_buf_printf(&line, "Content-Type: %s",
                      q->content_type ? q->content_type : "application/octet-stream");
        hdrs = curl_slist_append(hdrs, (char *)line.data);
    }
    for (const char *const *x = q->headers; x && *x; x++)
        hdrs = curl_slist_append(hdrs, *x);
    if (!hdrs) {
        pf_err_set(err, PF_EIO, "S3: out of memory building headers");
        goto out;
    }

    curl_easy_setopt(h, CURLOPT_URL, (char *)url.data);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, s->access_key);
    curl_easy_setopt(h, CURLOPT_PASSWORD, s->secret_key);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, s->timeout < 30 ? s->timeout : 30L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s->timeout);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* libcurl's defaults, spelled out: nothing in permafrost turns them off. */
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    if (!strcmp(q->method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (has_body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body ? q->body : (const void *)"");
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
    } else if (strcmp(q->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
    }

    CURLcode cc = curl_easy_perform(h);
    if (cc == CURLE_WRITE_ERROR && resp->overflow) {
        pf_err_set(err, PF_ECORRUPT, "S3 endpoint %s://%s sent more bytes than asked for",
                   s->scheme, s->hostport);
        goto out;
    }
    if (cc != CURLE_OK) {
        curl_error(s, cc, errbuf, err);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    resp->content_length = -1;
    curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &resp->content_length);
    rc = 0;
out:
    if (h) {
        /* Do not keep pointers into this call's stack in a pooled handle. */
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
        if (rc < 0)
            curl_easy_cleanup(h); /* its connection may be broken */
        else
            handle_put(s, h);
    }
    resp->h = NULL;
    curl_slist_free_all(hdrs);
    pf_buf_free(&url);
    pf_buf_free(&line);
    return rc;
}

/* Turns a non-2xx status into an error naming what failed and what to do. */
static int s3_status_error(s3_store *s, const char *op, const char *key, s3_resp *r, pf_err *err)
{
    char code[128], msg[256];
    xml_text(&r->err_body, "Code", code, sizeof code);
    xml_text(&r->err_body, "Message", msg, sizeof msg);
    const char *k = key ? key : "";
    long st = r->status;
    if (!strcmp(code, "NoSuchBucket"))
        return pf_err_set(err, PF_ENOREPO,
                          "S3 bucket %s does not exist at %s://%s: create it first", s->bucket,
                          s->scheme, s->hostport);
    if (st == 404 && (!code[0] || !strcmp(code, "NoSuchKey")))
        return pf_err_set(err, PF_ENOTFOUND, "object %s%s not found in s3 bucket %s", s->prefix, k,
                          s->bucket);
    if (!strcmp(code, "RequestTimeTooSkewed"))
        return pf_err_set(err, PF_EAUTH,
                          "S3 refused the request: this machine's clock is off; set it right "
                          "(e.g. with NTP)");
    if (!strcmp(code, "AuthorizationHeaderMalformed") || st == 301 ||
        !strcmp(code, "PermanentRedirect"))
        return pf_err_set(err, PF_EUSAGE,
                          "S3 bucket %s is not in region %s or not at this endpoint: set "
                          "AWS_DEFAULT_REGION or the endpoint to the bucket's",
                          s->bucket, s->sigv4 + 8);
    if (st == 403 || st == 401)
        return pf_err_set(err, PF_EAUTH,
                          "S3 denied %s %s in bucket %s (%s): check AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY%s and the key's permissions",
                          op, k, s->bucket, code[0] ? code : "403 Forbidden",
                          s->session_token ? ", AWS_SESSION_TOKEN" : "");
    pf_err_set(err, PF_EIO, "S3 %s %s in bucket %s failed: HTTP %ld%s%s%s%s", op, k, s->bucket, st,
               code[0] ? " " : "", code, msg[0] ? ": " : "", msg);
    if (st >= 500 || st == 429 || st == 408 || !strcmp(code, "RequestTimeout") ||
        !strcmp(code, "SlowDown") || !strcmp(code, "InternalError"))
        err->retryable = true;
    return -1;
}

/* A request with no body of interest: returns 0 on 2xx, else -1 with err filled. */
static int s3_simple(s3_store *s, const char *op, const s3_req *q, s3_resp *r, pf_err *err)
{
    if (s3_perform(s, q, r, err) < 0)
        return pf_err_prefix(err, "%s %s", op, q->key ? q->key : "");
    if (r->status < 200 || r->status >= 300)
        return s3_status_error(s, op, q->key, r, err);
    return 0;
}

/* ---- operations ---- */

/* What an upload sends besides its bytes: Content-Type and more header lines (both may be
 * NULL). */
typedef struct put_meta {
    const char *content_type;
    const char *const *headers;
} put_meta;

static int s3_put_single(s3_store *s, const char *key, const void *data, size_t len,
                         const put_meta *m, pf_err *err)
{
    s3_req q = {.method = "PUT",
                .key = key,
                .body = data,
                .body_len = len,
                .content_type = m ? m->content_type : NULL,
                .headers = m ? m->headers : NULL};
    s3_resp r = {0};
    int rc = s3_simple(s, "put", &q, &r, err);
    pf_buf_free(&r.err_body);
    return rc;
}

/* A multipart upload in progress: parts are sent one by one, in order. */
typedef struct s3_upload {
    s3_store *s;
    char *key;
    char upload_id[1024];
    pf_buf done; /* the CompleteMultipartUpload body so far */
    size_t nparts;
} s3_upload;

static void upload_abort(s3_upload *u)
{
    if (u->upload_id[0]) {
        pf_buf qs = PF_BUF_INIT;
        pf_buf_append_str(&qs, "uploadId=");
        aws_encode(&qs, u->upload_id, strlen(u->upload_id), 0);
        s3_req q = {.method = "DELETE", .key = u->key, .query = (char *)qs.data};
        s3_resp r = {0};
        pf_err ignored = {0};
        s3_simple(u->s, "abort upload", &q, &r, &ignored);
        pf_buf_free(&r.err_body);
        pf_buf_free(&qs);
    }
    free(u->key);
    pf_buf_free(&u->done);
    memset(u, 0, sizeof *u);
}

static int upload_begin(s3_store *s, const char *key, const put_meta *m, s3_upload *u, pf_err *err)
{
    memset(u, 0, sizeof *u);
    pf_buf resp_body = PF_BUF_INIT;
    s3_req q = {.method = "POST",
                .key = key,
                .query = "uploads=",
                .content_type = m ? m->content_type : NULL,
                .headers = m ? m->headers : NULL};
    s3_resp r = {.data = &resp_body, .cap = S3_ERRBODY_MAX};
    int rc = s3_simple(s, "put (start multipart upload)", &q, &r, err);
    pf_buf_free(&r.err_body);
    if (rc == 0) {
        xml_text(&resp_body, "UploadId", u->upload_id, sizeof u->upload_id);
        if (!u->upload_id[0]) {
            rc = pf_err_set(err, PF_EIO,
                            "put %s: S3 answered CreateMultipartUpload without an UploadId", key);
            err->retryable = true;
        }
    }
    pf_buf_free(&resp_body);
    if (rc == 0) {
        u->s = s;
        u->key = xstrndup(key, strlen(key));
        pf_buf_append_str(&u->done, "<CompleteMultipartUpload>");
    }
    return rc;
}

/* Sends part number i (from 1) and copies its ETag to etag. Reads u only, so several
 * threads may send parts of one upload at once. */
static int upload_send(const s3_upload *u, size_t i, const void *data, size_t n, char etag[256],
                       pf_err *err)
{
    pf_buf qs = PF_BUF_INIT;
    pf_buf_printf(&qs, "partNumber=%zu&uploadId=", i);
    aws_encode(&qs, u->upload_id, strlen(u->upload_id), 0);
    s3_req pq = {
        .method = "PUT", .key = u->key, .query = (char *)qs.data, .body = data, .body_len = n};
    s3_resp pr = {0};
    int rc = s3_simple(u->s, "put (upload part)", &pq, &pr, err);
    pf_buf_free(&pr.err_body);
    pf_buf_free(&qs);
    if (rc < 0)
        return -1;
    if (!pr.etag[0]) {
        pf_err_set(err, PF_EIO, "put %s: S3 answered UploadPart %zu without an ETag", u->key, i);
        err->retryable = true;
        return -1;
    }
    snprintf(etag, 256, "%s", pr.etag);
    return 0;
}

/* Adds the next part (number u->nparts + 1) to the completion body. */
static void upload_record(s3_upload *u, const char *etag)
{
    size_t i = u->nparts + 1;
    pf_buf_printf(&u->done, "<Part><PartNumber>%zu</PartNumber><ETag>", i);
    for (const char *e = etag; *e; e++) {
        if (*e == '&')
            pf_buf_append_str(&u->done, "&amp;");
        else if (*e == '<')
            pf_buf_append_str(&u->done, "&lt;");
        else if (*e == '>')
            pf_buf_append_str(&u->done, "&gt;");
        else
            pf_buf_u8(&u->done, (uint8_t)*e);
    }
    pf_buf_append_str(&u->done, "</ETag></Part>");
    u->nparts = i;
}

static int upload_part(s3_upload *u, const void *data, size_t n, pf_err *err)
{
    char etag[256];
    if (upload_send(u, u->nparts + 1, data, n, etag, err) < 0)
        return -1;
    upload_record(u, etag);
    return 0;
}

/* Completes the upload; on failure the caller aborts it. */
static int upload_complete(s3_upload *u, pf_err *err)
{
    pf_buf qs = PF_BUF_INIT, resp_body = PF_BUF_INIT;
    pf_buf_append_str(&u->done, "</CompleteMultipartUpload>");
    pf_buf_append_str(&qs, "uploadId=");
    aws_encode(&qs, u->upload_id, strlen(u->upload_id), 0);
    s3_req cq = {.method = "POST",
                 .key = u->key,
                 .query = (char *)qs.data,
                 .body = u->done.data,
                 .body_len = u->done.len};
    s3_resp cr = {.data = &resp_body, .cap = S3_ERRBODY_MAX};
    int rc = s3_simple(u->s, "put (complete multipart upload)", &cq, &cr, err);
    pf_buf_free(&cr.err_body);
    /* S3 may answer 200 and still report an error in the body. */
    if (rc == 0 && resp_body.data && memmem(resp_body.data, resp_body.len, "<Error>", 7)) {
        cr.status = 500;
        cr.err_body = resp_body;
        resp_body = (pf_buf)PF_BUF_INIT;
        s3_status_error(u->s, "put (complete multipart upload)", u->key, &cr, err);
        pf_buf_free(&cr.err_body);
        rc = -1;
    }
    if (rc == 0)
        u->upload_id[0] = 0; /* completed: nothing to abort */
    pf_buf_free(&qs);
    pf_buf_free(&resp_body);
    return rc;
}

/* The parts of one multipart upload of a buffer, sent by a few threads at once: each
 * takes the next part number; the first failure stops the others from starting more. */
typedef struct part_job {
    const s3_upload *u;
    const uint8_t *data;
    size_t len;
    uint64_t part;
    size_t nparts, next;
    char (*etags)[256];
    pthread_mutex_t mu;
    int failed;
    pf_err err;
} part_job;

static void *part_worker(void *arg)
{
    part_job *pj = arg;
    for (;;) {
        pthread_mutex_lock(&pj->mu);
        size_t i = pj->next;
        int stop = pj->failed || i >= pj->nparts;
        if (!stop)
            pj->next++;
        pthread_mutex_unlock(&pj->mu);
        if (stop)
            return NULL;
        uint64_t off = (uint64_t)i * pj->part;
        size_t n = (size_t)(pj->len - off < pj->part ? pj->len - off : pj->part);
        pf_err e = {0};
        if (upload_send(pj->u, i + 1, pj->data + off, n, pj->etags[i], &e) < 0) {
            pthread_mutex_lock(&pj->mu);
            if (!pj->failed) {
                pj->failed = 1;
                pj->err = e;
            }
            pthread_mutex_unlock(&pj->mu);
            return NULL;
        }
    }
}

/* Multipart upload: the object appears only when CompleteMultipartUpload succeeds, so put
 * stays atomic; on any failure the upload is aborted so no parts linger (and cost). A
 * failed part fails the put, which the retry layer repeats whole. Parts go up in parallel
 * (the store's connections, at most S3_POOL_MAX): one stream per connection is what a
 * single upload gets from a server that limits each. */
static int s3_put_multipart(s3_store *s, const char *key, const void *data, size_t len, pf_err *err)
{
    uint64_t part = s->part_size;
    if ((len + part - 1) / part > S3_MAX_PARTS)
        part = (len + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
    size_t nparts = (size_t)((len + part - 1) / part);
    part_job pj = {.data = data, .len = len, .part = part, .nparts = nparts};
    pj.etags = calloc(nparts, sizeof *pj.etags);
    if (!pj.etags)
        return pf_err_set(err, PF_EIO, "put %s: out of memory", key);
    pthread_mutex_init(&pj.mu, NULL);
    s3_upload u;
    int rc = upload_begin(s, key, NULL, &u, err);
    if (rc == 0) {
        pj.u = &u;
        int want = s->connections > S3_POOL_MAX ? S3_POOL_MAX : s->connections;
        if ((size_t)want > nparts)
            want = (int)nparts;
        pthread_t th[S3_POOL_MAX];
        int started = 0;
        for (int i = 1; i < want; i++)
            if (pthread_create(&th[started], NULL, part_worker, &pj) == 0)
                started++;
        part_worker(&pj); /* this thread sends parts too */
        for (int i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        if (pj.failed) {
            *err = pj.err;
            rc = -1;
        }
    }
    for (size_t i = 0; rc == 0 && i < nparts; i++)
        upload_record(&u, pj.etags[i]);
    if (rc == 0)
        rc = upload_complete(&u, err);
    upload_abort(&u);
    pthread_mutex_destroy(&pj.mu);
    free(pj.etags);
    return rc;
}

static int s3_put(pf_store *st, const char *key, const void *data, size_t len, pf_err *err)
{
    s3_store *s = st->impl;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    if (len > s->threshold)
        return s3_put_multipart(s, key, data, len, err);
    return s3_put_single(s, key, data, len, NULL, err);
}

/* HEAD of any key (the caller has checked it). */
static int stat_key(s3_store *s, const char *key, uint64_t *size, pf_err *err)
{
    s3_req q = {.method = "HEAD", .key = key};
    s3_resp r = {0};
    int rc = s3_simple(s, "stat", &q, &r, err);
    if (rc == 0 && r.content_length < 0) {
        pf_err_set(err, PF_EIO, "stat %s: S3 answered HEAD without a Content-Length", key);
        err->retryable = true;
        rc = -1;
    }
    if (rc == 0)
        *size = (uint64_t)r.content_length;
    pf_buf_free(&r.err_body);
    return rc;
}

static int s3_stat(pf_store *st, const char *key, uint64_t *size, pf_err *err)
{
    if (pf_store_check_key(key, err) < 0)
        return -1;
    return stat_key(st->impl, key, size, err);
}

/* GET of [off, off+len) of any key (the caller has checked it); the reply's headers stay in
 * *rh (its ETag and Content-Type) when rh is not NULL. */
static int get_key(s3_store *s, const char *key, uint64_t off, uint64_t len, pf_buf *out,
                   s3_resp *rh, pf_err *err)
{
    size_t start = out->len;
    char range[64];
    uint64_t size, n;
    int rc = -1;
    /* S3 cannot express an empty range, and answers 416 for "bytes=size-": ask for the
     * size instead, so both behave as the contract says. */
    if (len == 0) {
        if (stat_key(s, key, &size, err) < 0)
            return pf_err_prefix(err, "get");
        return pf_store_check_range(key, size, off, len, &n, err);
    }
    s3_req q = {.method = "GET", .key = key};
    s3_resp r = {.data = out};
    if (len != PF_STORE_ALL) {
        if (off > UINT64_MAX - len) {
            pf_err_set(err, PF_ECORRUPT, "get %s: range overflows", key);
            goto out;
        }
        snprintf(range, sizeof range, "bytes=%llu-%llu", (unsigned long long)off,
                 (unsigned long long)(off + len - 1));
        q.range = range;
        r.is_range = 1;
        r.range_off = off;
        r.cap = len;
    } else if (off > 0) {
        snprintf(range, sizeof range, "bytes=%llu-", (unsigned long long)off);
        q.range = range;
        r.is_range = 1;
        r.range_off = off;
    }
    if (s3_perform(s, &q, &r, err) < 0) {
        pf_err_prefix(err, "get %s", key);
        goto out;
    }
    if (r.status == 416) {
        if (len == PF_STORE_ALL) {
            /* "bytes=off-" with off == size is a legal empty read for us. */
            out->len = start;
            if (stat_key(s, key, &size, err) < 0) {
                pf_err_prefix(err, "get");
                goto out;
            }
            rc = pf_store_check_range(key, size, off, len, &n, err);
            goto out;
        }
        pf_err_set(err, PF_ECORRUPT, "object %s: range %s is past its end", key, range);
        goto out;
    }
    if (r.status < 200 || r.status >= 300) {
        s3_status_error(s, "get", key, &r, err);
        goto out;
    }
    if (r.status == 206 && r.cr_start >= 0 && (uint64_t)r.cr_start != off) {
        pf_err_set(err, PF_ECORRUPT, "object %s: asked for bytes from %llu, S3 sent from %lld", key,
                   (unsigned long long)off, (long long)r.cr_start);
        goto out;
    }
    if (len != PF_STORE_ALL && r.got != len) {
        pf_err_set(err, PF_ECORRUPT,
                   "object %s: asked for %llu bytes at offset %llu, got %zu (past its end?)", key,
                   (unsigned long long)len, (unsigned long long)off, r.got);
        goto out;
    }
    if (r.is_range && r.status == 200 && r.skipped < off) {
        pf_err_set(err, PF_ECORRUPT, "object %s: read at offset %llu is past its end", key,
                   (unsigned long long)off);
        goto out;
    }
    rc = 0;
out:
    if (rc < 0 && out->data) {
        out->len = start;
        out->data[start] = 0;
    }
    pf_buf_free(&r.err_body);
    if (rh) {
        memcpy(rh->etag, r.etag, sizeof r.etag);
        memcpy(rh->content_type, r.content_type, sizeof r.content_type);
    }
    return rc;
}

static int s3_get(pf_store *st, const char *key, uint64_t off, uint64_t len, pf_buf *out,
                  pf_err *err)
{
    if (pf_store_check_key(key, err) < 0)
        return -1;
    return get_key(st->impl, key, off, len, out, NULL, err);
}

static int s3_remove(pf_store *st, const char *key, pf_err *err)
{
    s3_store *s = st->impl;
    uint64_t size;
    if (s3_stat(st, key, &size, err) < 0)
        return pf_err_prefix(err, "remove");
    s3_req q = {.method = "DELETE", .key = key};
    s3_resp r = {0};
    int rc = s3_simple(s, "remove", &q, &r, err);
    pf_buf_free(&r.err_body);
    return rc;
}

int pf_s3_list_page(const char *prefix, const pf_buf *body, pf_store_list_cb cb, void *ctx,
                    char **token, pf_err *err)
{
    const char *p = (const char *)body->data, *end = p + body->len, *v, *next;
    size_t vn, plen = strlen(prefix);
    pf_buf key = PF_BUF_INIT;
    int rc = 0;
    *token = NULL;
    if (!p || !memmem(p, body->len, "<ListBucketResult", 17)) {
        rc = pf_err_set(err, PF_EIO, "list: S3 answered with something that is not a listing");
        err->retryable = true;
        goto out;
    }
    while (p < end && xml_elem(p, (size_t)(end - p), "Contents", &v, &vn, &next)) {
        const char *kv, *sv;
        size_t kn, sn;
        p = next;
        if (!xml_elem(v, vn, "Key", &kv, &kn, NULL) || !xml_elem(v, vn, "Size", &sv, &sn, NULL)) {
            rc = pf_err_set(err, PF_EIO, "list: S3 listing entry without Key or Size");
            goto out;
        }
        pf_buf_reset(&key);
        pf_err kerr = {0};
        if (xml_unescape(&key, kv, kn) < 0 || !key.data || key.len <= plen ||
            memcmp(key.data, prefix, plen) != 0 ||
            pf_store_check_key((char *)key.data + plen, &kerr) < 0)
            continue; /* not ours (a folder marker, a name we never write): skip */
        if (sn == 0 || sn > 19) {
            rc = pf_err_set(err, PF_EIO, "list: S3 listing has a bad Size for %.200s",
                            (char *)key.data);
            goto out;
        }
        uint64_t size = 0;
        for (size_t i = 0; i < sn; i++) {
            if (sv[i] < '0' || sv[i] > '9') {
                rc = pf_err_set(err, PF_EIO, "list: S3 listing has a bad Size for %.200s",
                                (char *)key.data);
                goto out;
            }
            size = size * 10 + (uint64_t)(sv[i] - '0');
        }
        rc = cb((char *)key.data + plen, size, ctx, err);
        if (rc != 0)
            goto out;
    }
    char trunc[16];
    xml_text(body, "IsTruncated", trunc, sizeof trunc);
    if (!strcmp(trunc, "true")) {
        char tok[2048];
        xml_text(body, "NextContinuationToken", tok, sizeof tok);
        if (!tok[0]) {
            rc = pf_err_set(err, PF_EIO,
                            "list: S3 listing is truncated but has no "
                            "NextContinuationToken");
            goto out;
        }
        *token = strdup(tok);
        if (!*token)
            abort();
    }
out:
    pf_buf_free(&key);
    return rc;
}

static int s3_list(pf_store *st, const char *prefix, pf_store_list_cb cb, void *ctx, pf_err *err)
{
    s3_store *s = st->impl;
    pf_buf qs = PF_BUF_INIT, body = PF_BUF_INIT, full = PF_BUF_INIT;
    char *token = NULL, *prev = NULL;
    int rc = -1;
    if (!prefix)
        prefix = "";
    if (pf_store_check_prefix(prefix, err) < 0)
        return -1;
    pf_buf_printf(&full, "%s%s", s->prefix, prefix);
    for (;;) {
        pf_buf_reset(&qs);
        if (token) {
            pf_buf_append_str(&qs, "continuation-token=");
            aws_encode(&qs, token, strlen(token), 0);
            pf_buf_append_str(&qs, "&");
        }
        pf_buf_printf(&qs, "list-type=2&max-keys=%d&prefix=", s->max_keys);
        if (full.len)
            aws_encode(&qs, (char *)full.data, full.len, 0);
        pf_buf_reset(&body);
        s3_req q = {.method = "GET", .query = (char *)qs.data};
        s3_resp r = {.data = &body, .cap = S3_LISTBODY_MAX};
        if (s3_perform(s, &q, &r, err) < 0) {
            pf_err_prefix(err, "list %s", prefix);
            pf_buf_free(&r.err_body);
            goto out;
        }
        if (r.status < 200 || r.status >= 300) {
            s3_status_error(s, "list", prefix, &r, err);
            pf_buf_free(&r.err_body);
            goto out;
        }
        pf_buf_free(&r.err_body);
        free(prev);
        prev = token;
        rc = pf_s3_list_page(s->prefix, &body, cb, ctx, &token, err);
        if (rc != 0)
            goto out;
        if (!token)
            break;
        if (prev && !strcmp(prev, token)) {
            rc = pf_err_set(err, PF_EIO,
                            "list %s: S3 returned the same continuation token "
                            "twice",
                            prefix);
            goto out;
        }
        rc = -1;
    }
    rc = 0;
out:
    free(token);
    free(prev);
    pf_buf_free(&qs);
    pf_buf_free(&body);
    pf_buf_free(&full);
    return rc;
}

static void s3_free(pf_store *st)
{
    s3_store *s = st->impl;
    if (!s)
        return;
    for (int i = 0; i < s->npool; i++)
        curl_easy_cleanup(s->pool[i]);
    pthread_mutex_destroy(&s->mu);
    if (s->secret_key)
        OPENSSL_cleanse(s->secret_key, strlen(s->secret_key));
    if (s->session_token)
        OPENSSL_cleanse(s->session_token, strlen(s->session_token));
    free(s->scheme);
    free(s->hostport);
    free(s->bucket);
    free(s->prefix);
    free(s->sigv4);
    free(s->access_key);
    free(s->secret_key);
    free(s->session_token);
    free(s);
}

static const struct pf_store_ops s3_ops = {
    .name = "s3",
    .put = s3_put,
    .get = s3_get,
    .stat = s3_stat,
    .list = s3_list,
    .remove = s3_remove,
    .free = s3_free,
};

static char *xstrndup(const char *p, size_t n)
{
    char *s = strndup(p, n);
    if (!s)
        abort();
    return s;
}

/* localhost, 127.x.y.z or [::1], with or without a port. */
static int loopback_endpoint(const char *hostport)
{
    size_t hl = hostport[0] == '[' ? strcspn(hostport, "]") + 1 : strcspn(hostport, ":");
    return (hl == 9 && !strncmp(hostport, "localhost", 9)) || !strncmp(hostport, "127.", 4) ||
           (hl == 5 && !strncmp(hostport, "[::1]", 5));
}

static int bucket_name_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == '_' || (c >= 'A' && c <= 'Z')))
            return 0;
    }
    return 1;
}

pf_store *pf_store_s3_new(const char *url, const pf_store_opts *opts, pf_err *err)
{
    static const pf_store_opts none;
    s3_store *s = NULL;
    if (!opts)
        opts = &none;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        pf_err_set(err, PF_EIO, "cannot initialise libcurl: %s", curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    if (strncmp(url, "s3:", 3) != 0) {
        pf_err_set(err, PF_EUSAGE, "%s is not an s3: URL", url);
        return NULL;
    }
    const char *u = url + 3, *rest;
    s = calloc(1, sizeof *s);
    if (!s)
        abort();
    pthread_mutex_init(&s->mu, NULL);
    if (!strncmp(u, "https://", 8)) {
        s->scheme = xstrndup("https", 5);
        rest = u + 8;
    } else if (!strncmp(u, "http://", 7)) {
        s->scheme = xstrndup("http", 4);
        rest = u + 7;
    } else {
        pf_err_set(err, PF_EUSAGE,
                   "repository %s: write s3:http(s)://endpoint/bucket[/prefix], e.g. "
                   "s3:https://s3.amazonaws.com/my-bucket/mastodon",
                   url);
        goto fail;
    }
    const char *slash = strchr(rest, '/');
    if (!slash || slash == rest) {
        pf_err_set(err, PF_EUSAGE, "repository %s: no bucket after the endpoint", url);
        goto fail;
    }
    s->hostport = xstrndup(rest, (size_t)(slash - rest));
    if (strchr(s->hostport, '@')) {
        pf_err_set(err, PF_EUSAGE,
                   "repository URL must not hold credentials: set AWS_ACCESS_KEY_ID and "
                   "AWS_SECRET_ACCESS_KEY instead");
        goto fail;
    }
    if (!strcmp(s->scheme, "http") && !loopback_endpoint(s->hostport))
        pf_warn("S3 endpoint %s is plain http: anyone on the network path sees object names "
                "and sizes and can drop, replay or withhold requests (the contents stay "
                "encrypted and authenticated); use https",
                s->hostport);
    const char *b = slash + 1, *bend = strchr(b, '/');
    s->bucket = bend ? xstrndup(b, (size_t)(bend - b)) : xstrndup(b, strlen(b));
    if (!bucket_name_ok(s->bucket)) {
        pf_err_set(err, PF_EUSAGE, "repository %s: '%s' is not a valid S3 bucket name", url,
                   s->bucket);
        goto fail;
    }
    pf_buf pfx = PF_BUF_INIT;
    pf_buf_append_str(&pfx, "");
    if (bend) {
        const char *p = bend + 1;
        size_t n = strlen(p);
        while (n > 0 && p[n - 1] == '/')
            n--;
        if (n > 0) {
            pf_buf_append(&pfx, p, n);
            pf_buf_append_str(&pfx, "/");
        }
    }
    s->prefix = (char *)pf_buf_detach(&pfx, NULL);
    if (pf_store_check_prefix(s->prefix, err) < 0) {
        pf_err_prefix(err, "repository %s", url);
        goto fail;
    }
    const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    const char *tok = getenv("AWS_SESSION_TOKEN");
    if (!ak || !*ak || !sk || !*sk) {
        pf_err_set(err, PF_EAUTH,
                   "repository %s: S3 credentials missing: set AWS_ACCESS_KEY_ID and "
                   "AWS_SECRET_ACCESS_KEY",
                   url);
        goto fail;
    }
    s->access_key = xstrndup(ak, strlen(ak));
    s->secret_key = xstrndup(sk, strlen(sk));
    if (tok && *tok)
        s->session_token = xstrndup(tok, strlen(tok));
    const char *region = opts->s3_region;
    if (!region || !*region)
        region = getenv("AWS_DEFAULT_REGION");
    if (!region || !*region)
        region = getenv("AWS_REGION");
    if (!region || !*region)
        region = "us-east-1";
    for (const char *c = region; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-')) {
            pf_err_set(err, PF_EUSAGE, "S3 region '%.64s' is not valid", region);
            goto fail;
        }
    size_t sn = strlen(region) + 16;
    s->sigv4 = malloc(sn);
    if (!s->sigv4)
        abort();
    snprintf(s->sigv4, sn, "aws:amz:%s:s3", region);
    s->virtual_host = opts->s3_virtual_host;
    s->max_keys = (int)pf_store_env_long("PERMAFROST_S3_MAX_KEYS", 1000);
    if (s->max_keys < 1 || s->max_keys > 1000)
        s->max_keys = 1000;
    s->threshold = (uint64_t)pf_store_env_long("PERMAFROST_S3_MULTIPART_THRESHOLD",
                                               (long)S3_DEFAULT_THRESHOLD);
    s->part_size =
        (uint64_t)pf_store_env_long("PERMAFROST_S3_PART_SIZE", (long)S3_DEFAULT_PART_SIZE);
    if (s->part_size < 1)
        s->part_size = S3_DEFAULT_PART_SIZE;
    s->connections = opts->connections > 0 ? opts->connections : 4;
    s->timeout = pf_store_env_long("PERMAFROST_NET_TIMEOUT", 60);
    if (s->timeout < 1)
        s->timeout = 60;
    pf_store *st = pf_store_alloc(&s3_ops, s, url);
    /* Each transfer is one request on a pooled handle: a few overlap the latency. */
    st->props = (pf_store_props){.remote = true, .connections = s->connections};
    return st;
fail : {
    pf_store tmp = {.ops = &s3_ops, .impl = s};
    s3_free(&tmp);
    return NULL;
}
}

/* ---- objects of a bucket that is not a repository (store/s3.h) ---- */

static s3_store *s3_of(pf_store *st, pf_err *err)
{
    if (st && st->ops == &s3_ops)
        return st->impl;
    pf_err_set(err, PF_EUSAGE, "%s is not an S3 bucket opened without the retry layer",
               st ? st->location : "(none)");
    return NULL;
}

/* A key as a bucket may hold it: 1..1024 bytes, no NUL (S3's own rule); no dot segments, which
 * would change the URL's path. */
static int raw_key_ok(const char *key, pf_err *err)
{
    size_t n = strlen(key);
    if (n == 0 || n > PF_STORE_KEY_MAX)
        return pf_err_set(err, PF_EUSAGE, "S3 key of %zu bytes: 1 to %d allowed", n,
                          PF_STORE_KEY_MAX);
    for (const char *c = key; *c;) {
        size_t l = strcspn(c, "/");
        if ((l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
            return pf_err_set(err, PF_EUSAGE, "S3 key %.200s has a . or .. segment", key);
        c += l;
        if (*c)
            c++;
    }
    return 0;
}

/* "2026-12-01T16:34:17.123Z" as nanoseconds since the epoch; 0 when it is not that. */
static int64_t iso_time_ns(const char *t)
{
    struct tm tm = {0};
    int ms = 0;
    const char *p = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++)
            if (digits < 3) {
                ms = ms * 10 + (*p - '0');
                digits++;
            }
        while (digits++ < 3)
            ms *= 10;
    }
    if (*p != 'Z')
        return 0;
    time_t secs = timegm(&tm);
    if (secs == (time_t)-1)
        return 0;
    return (int64_t)secs * 1000000000 + (int64_t)ms * 1000000;
}

int pf_s3_objects_page(const pf_buf *body, pf_s3_object_cb cb, void *ctx, char **token, pf_err *err)
{
    const char *p = (const char *)body->data, *end = p + body->len, *v, *next;
    size_t vn;
    pf_buf key = PF_BUF_INIT, etag = PF_BUF_INIT, when = PF_BUF_INIT;
    int rc = 0;
    *token = NULL;
    if (!p || !memmem(p, body->len, "<ListBucketResult", 17)) {
        rc = pf_err_set(err, PF_EIO, "list: S3 answered with something that is not a listing");
        err->retryable = true;
        goto out;
    }
    while (p < end && xml_elem(p, (size_t)(end - p), "Contents", &v, &vn, &next)) {
        const char *kv, *sv, *ev, *tv;
        size_t kn, sn, en, tn;
        p = next;
        if (!xml_elem(v, vn, "Key", &kv, &kn, NULL) || !xml_elem(v, vn, "Size", &sv, &sn, NULL)) {
            rc = pf_err_set(err, PF_EIO, "list: S3 listing entry without Key or Size");
            goto out;
        }
        pf_buf_reset(&key);
        pf_buf_reset(&etag);
        pf_buf_reset(&when);
        if (xml_unescape(&key, kv, kn) < 0 || !key.data) {
            rc = pf_err_set(err, PF_EIO, "list: S3 listing has a key that does not decode");
            goto out;
        }
        uint64_t size = 0;
        bool size_ok = sn > 0 && sn <= 19;
        for (size_t i = 0; size_ok && i < sn; i++) {
            size_ok = sv[i] >= '0' && sv[i] <= '9';
            size = size * 10 + (uint64_t)(sv[i] - '0');
        }
        if (!size_ok) {
            rc = pf_err_set(err, PF_EIO, "list: S3 listing has a bad Size for %.200s",
                            (char *)key.data);
            goto out;
        }
        if (xml_elem(v, vn, "ETag", &ev, &en, NULL) && en < 256)
            xml_unescape(&etag, ev, en);
        if (xml_elem(v, vn, "LastModified", &tv, &tn, NULL) && tn < 64)
            xml_unescape(&when, tv, tn);
        pf_s3_object o = {.key = (char *)key.data,
                          .size = size,
                          .etag = etag.data ? (char *)etag.data : "",
                          .mtime_ns = when.data ? iso_time_ns((char *)when.data) : 0};
        rc = cb(&o, ctx, err);
        if (rc != 0)
            goto out;
    }
    char trunc[16];
    xml_text(body, "IsTruncated", trunc, sizeof trunc);
    if (!strcmp(trunc, "true")) {
        char tok[2048];
        xml_text(body, "NextContinuationToken", tok, sizeof tok);
        if (!tok[0]) {
            rc = pf_err_set(err, PF_EIO,
                            "list: S3 listing is truncated but has no NextContinuationToken");
            goto out;
        }
        *token = xstrndup(tok, strlen(tok));
    }
out:
    pf_buf_free(&key);
    pf_buf_free(&etag);
    pf_buf_free(&when);
    return rc;
}

int pf_s3_list_objects(pf_store *st, const char *prefix, pf_s3_object_cb cb, void *ctx, pf_err *err)
{
    s3_store *s = s3_of(st, err);
    if (!s)
        return -1;
    pf_buf qs = PF_BUF_INIT, body = PF_BUF_INIT;
    char *token = NULL, *prev = NULL;
    int rc = -1;
    if (!prefix)
        prefix = "";
    for (;;) {
        pf_buf_reset(&qs);
        if (token) {
            pf_buf_append_str(&qs, "continuation-token=");
            aws_encode(&qs, token, strlen(token), 0);
            pf_buf_append_str(&qs, "&");
        }
        pf_buf_printf(&qs, "list-type=2&max-keys=%d&prefix=", s->max_keys);
        aws_encode(&qs, prefix, strlen(prefix), 0);
        pf_buf_reset(&body);
        s3_req q = {.method = "GET", .query = (char *)qs.data};
        s3_resp r = {.data = &body, .cap = S3_LISTBODY_MAX};
        if (s3_perform(s, &q, &r, err) < 0) {
            pf_err_prefix(err, "list bucket %s", s->bucket);
            pf_buf_free(&r.err_body);
            goto out;
        }
        if (r.status < 200 || r.status >= 300) {
            s3_status_error(s, "list", prefix, &r, err);
            pf_buf_free(&r.err_body);
            goto out;
        }
        pf_buf_free(&r.err_body);
        free(prev);
        prev = token;
        rc = pf_s3_objects_page(&body, cb, ctx, &token, err);
        if (rc != 0)
            goto out;
        rc = -1;
        if (!token)
            break;
        if (prev && !strcmp(prev, token)) {
            pf_err_set(err, PF_EIO, "list bucket %s: S3 returned the same continuation token twice",
                       s->bucket);
            goto out;
        }
    }
    rc = 0;
out:
    free(token);
    free(prev);
    pf_buf_free(&qs);
    pf_buf_free(&body);
    return rc;
}

int pf_s3_get_object(pf_store *st, const char *key, uint64_t off, uint64_t len, pf_buf *out,
                     pf_s3_reply *reply, pf_err *err)
{
    s3_store *s = s3_of(st, err);
    if (!s || raw_key_ok(key, err) < 0)
        return -1;
    s3_resp rh = {0};
    int rc = get_key(s, key, off, len, out, &rh, err);
    if (reply) {
        memcpy(reply->etag, rh.etag, sizeof reply->etag);
        memcpy(reply->content_type, rh.content_type, sizeof reply->content_type);
    }
    return rc;
}

/* The header lines of pf_s3_put_opts, in lines[] (at most 3) and their storage. */
static void put_headers(const pf_s3_put_opts *o, char store[2][320], const char *lines[3],
                        put_meta *m)
{
    int n = 0;
    if (o && o->acl && *o->acl) {
        snprintf(store[0], sizeof store[0], "x-amz-acl: %s", o->acl);
        lines[n++] = store[0];
    }
    if (o && o->cache_control && *o->cache_control) {
        snprintf(store[1], sizeof store[1], "Cache-Control: %s", o->cache_control);
        lines[n++] = store[1];
    }
    lines[n] = NULL;
    m->content_type = o && o->content_type && *o->content_type ? o->content_type : NULL;
    m->headers = lines;
}

int pf_s3_put_object(pf_store *st, const char *key, const void *data, size_t len,
                     const pf_s3_put_opts *o, pf_err *err)
{
    s3_store *s = s3_of(st, err);
    if (!s || raw_key_ok(key, err) < 0)
        return -1;
    char store[2][320];
    const char *lines[3];
    put_meta m;
    put_headers(o, store, lines, &m);
    return s3_put_single(s, key, data, len, &m, err);
}

size_t pf_s3_part_size(pf_store *st)
{
    pf_err ignored = {0};
    s3_store *s = s3_of(st, &ignored);
    return s ? (size_t)s->part_size : 0;
}

struct pf_s3_upload {
    s3_upload u;
};

pf_s3_upload *pf_s3_upload_begin(pf_store *st, const char *key, const pf_s3_put_opts *o,
                                 pf_err *err)
{
    s3_store *s = s3_of(st, err);
    if (!s || raw_key_ok(key, err) < 0)
        return NULL;
    char store[2][320];
    const char *lines[3];
    put_meta m;
    put_headers(o, store, lines, &m);
    pf_s3_upload *up = calloc(1, sizeof *up);
    if (!up)
        abort();
    if (upload_begin(s, key, &m, &up->u, err) < 0) {
        free(up);
        return NULL;
    }
    return up;
}

int pf_s3_upload_part(pf_s3_upload *up, const void *data, size_t len, pf_err *err)
{
    if (up->u.nparts >= S3_MAX_PARTS)
        return pf_err_set(err, PF_EUSAGE, "put %s: more than %d parts", up->u.key, S3_MAX_PARTS);
    return upload_part(&up->u, data, len, err);
}

int pf_s3_upload_end(pf_s3_upload *up, pf_err *err)
{
    int rc = upload_complete(&up->u, err);
    pf_s3_upload_abort(up);
    return rc;
}

void pf_s3_upload_abort(pf_s3_upload *up)
{
    if (!up)
        return;
    upload_abort(&up->u);
    free(up);
}
