/* ldb.c - see ldb.h. */
#include "store/ldb.h"

#include "core/mem.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

td_status td__mkdir_p(const char *dir, td_err *err)
{
    char *p = td_xstrdup(dir);
    td_status st = TD_OK;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') {
            continue;
        }
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            st = td_err_set(err, TD_IO, "cannot create directory %s: %s", p, strerror(errno));
            break;
        }
        *s = c;
        if (c == '\0') {
            break;
        }
    }
    struct stat sb;
    if (!st && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
        st = td_err_set(err, TD_IO, "data directory %s is not a directory", dir);
    }
    td_free(p);
    return st;
}

td_status td__ldb_open(td__ldb *l, const char *path, const char *what, uint64_t cache_bytes,
                       uint64_t write_buffer_bytes, int max_open_files, bool sync, td_err *err)
{
    memset(l, 0, sizeof(*l));
    l->cache = leveldb_cache_create_lru((size_t)cache_bytes);
    l->opts = leveldb_options_create();
    leveldb_options_set_create_if_missing(l->opts, 1);
    leveldb_options_set_cache(l->opts, l->cache);
    leveldb_options_set_write_buffer_size(l->opts, (size_t)write_buffer_bytes);
    /* snappy is LevelDB's default; it silently stores blocks raw if built without it */
    leveldb_options_set_compression(l->opts, leveldb_snappy_compression);
    leveldb_options_set_max_open_files(l->opts, max_open_files);
    l->ropts = leveldb_readoptions_create();
    leveldb_readoptions_set_fill_cache(l->ropts, 1);
    l->wopts = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(l->wopts, sync);

    char *lerr = NULL;
    l->db = leveldb_open(l->opts, path, &lerr);
    if (lerr) {
        td_status st = td_err_set(err, TD_IO, "cannot open %s %s: %s", what, path, lerr);
        leveldb_free(lerr);
        l->db = NULL;
        td__ldb_close(l);
        return st;
    }
    return TD_OK;
}

void td__ldb_close(td__ldb *l)
{
    if (l->db) {
        leveldb_close(l->db);
    }
    if (l->opts) {
        leveldb_options_destroy(l->opts);
    }
    if (l->cache) {
        leveldb_cache_destroy(l->cache);
    }
    if (l->ropts) {
        leveldb_readoptions_destroy(l->ropts);
    }
    if (l->wopts) {
        leveldb_writeoptions_destroy(l->wopts);
    }
    memset(l, 0, sizeof(*l));
}
