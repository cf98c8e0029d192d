/* The host component's pure parts: which files of the machine a Mastodon server needs
 * again on a new one, decided from names and contents alone (no I/O), so that unit tests
 * can pin them down. The component itself (host.c) reads them under the host root
 * (the config file's host_root, "/" by default) and writes them back there. */
#ifndef PF_COMPONENT_HOST_H
#define PF_COMPONENT_HOST_H

#include <stdbool.h>
#include <stddef.h>

/* Whether the nginx configuration text [text, text+n) names domain as a whole host name
 * outside comments: "server_name example.com www.example.com;" names example.com, but
 * "files.example.com" or "example.community" do not. Case-insensitive, as DNS is. An
 * empty domain names nothing. */
bool pf_host_nginx_names_domain(const char *text, size_t n, const char *domain);

/* Whether name (an entry of /etc/systemd/system) is one of Mastodon's units,
 * "mastodon-*.service", or its drop-in directory, "mastodon-*.service.d". */
bool pf_host_unit_name(const char *name, bool *dropin);

/* Whether abs (a path as on the host, "/etc/letsencrypt") matches one of the
 * space-separated fnmatch(3) globs of list (host_exclude); NULL or empty matches none. */
bool pf_host_excluded(const char *list, const char *abs);

/* Where a path of the snapshot's host/ folder stands (rel is relative to host/, "etc" or
 * "etc/nginx/sites-available/mastodon"). Restore reads a snapshot that a compromised
 * server may have written: only these paths are ever written back. */
typedef enum {
    PF_HOST_REFUSED,   /* not a path this component writes: the snapshot is forged */
    PF_HOST_CONTAINER, /* a directory on the way ("etc/nginx"): never written itself */
    PF_HOST_KEPT,      /* a kept file, link or directory ("etc/letsencrypt"): written whole */
} pf_host_place;
pf_host_place pf_host_place_of(const char *rel);

#endif
