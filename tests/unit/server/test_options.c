/* The table-driven options: values of every type and their bounds, the
 * layers and their precedence, repeatable options, the config file (line
 * numbers, unknown keys, comments), the environment, --print-config read
 * back, and what a reload applies live. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/options.h"

static int opt(const char *name) {
    int i = options_find(name);
    assert_true(i >= 0);
    return i;
}

/* Sets name = value in the command line's layer; returns options_set's result. */
static int set_cli(options_t *o, const char *name, const char *value) {
    char where[64];
    snprintf(where, sizeof(where), "--%s", name);
    return options_set(o, opt(name), OPT_LAYER_CLI, where, value);
}

static void resolve_ok(options_t *o, server_config_t *cfg) {
    if (options_resolve(o, cfg) < 0)
        fail_msg("resolve: %s", options_error(o));
}

/* A temporary file holding text; the caller unlinks it. */
static void write_file(char *path, const char *text) {
    strcpy(path, "/tmp/tt-options-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
}

/* text written to a file and read back as --config: its options, resolved
 * into cfg (the caller frees them). */
static options_t *read_back(const char *text, server_config_t *cfg) {
    char path[64];
    write_file(path, text);
    options_t *back = options_new();
    assert_int_equal(options_read_file(back, path), 0);
    unlink(path);
    resolve_ok(back, cfg);
    return back;
}

static void test_defaults(void **state) {
    (void)state;
    server_config_t cfg;
    server_config_defaults(&cfg);
    assert_int_equal(cfg.nlisten, 1);
    assert_string_equal(cfg.listen[0].host, "127.0.0.1");
    assert_int_equal(cfg.listen[0].port, 9090);
    assert_false(cfg.listen[0].tls);
    assert_int_equal(cfg.max_message, 65536);
    assert_int_equal(cfg.max_queue, 1024 * 1024);
    assert_int_equal(cfg.chat.max_text, CHAT_MAX_TEXT_DEFAULT);
    assert_int_equal(cfg.chat.max_rooms, CHAT_MAX_ROOMS_DEFAULT);
    assert_int_equal(cfg.chat.rate_burst, CHAT_RATE_BURST_DEFAULT);
    assert_true(cfg.chat.rate_limit == CHAT_RATE_LIMIT_DEFAULT);
    assert_int_equal(cfg.chat.history_on_join, CHAT_HISTORY_DEFAULT);
    assert_int_equal(cfg.head_timeout_ms, 10000);
    assert_int_equal(cfg.ping_ms, 30000);
    assert_int_equal(cfg.max_connections, 0); /* from the open-file limit, at start */
    assert_int_equal(cfg.max_per_ip, 1000);
    assert_true(cfg.deflate);
    assert_false(cfg.echo);
    assert_string_equal(cfg.db_path, "./data/tertulia.db");
    assert_null(cfg.tls_cert);
    assert_null(cfg.origins);
    assert_int_equal(cfg.log_level, 1); /* info */
}

static void test_types_and_bounds(void **state) {
    (void)state;
    options_t *o = options_new();
    server_config_t cfg;
    /* sizes: suffixes, case, bounds, overflow */
    assert_int_equal(set_cli(o, "max-message", "1M"), 0);
    assert_int_equal(set_cli(o, "max-queue", "300k"), 0);
    assert_int_equal(set_cli(o, "db-max-bytes", "5"), 0);
    assert_int_equal(set_cli(o, "max-message", "124"), -1);
    assert_string_equal(options_error(o), "--max-message: '124' is not a number from 125 to "
                                          "1073741824");
    assert_int_equal(set_cli(o, "max-message", "1048577K"), -1);
    assert_string_equal(options_error(o),
                        "--max-message: '1048577K' is too large (at most 1073741824)");
    assert_int_equal(set_cli(o, "max-queue", "18014398509481985K"), -1);
    assert_non_null(strstr(options_error(o), "is too large"));
    assert_int_equal(set_cli(o, "max-queue", " 5K"), -1);
    assert_int_equal(set_cli(o, "max-queue", "-5"), -1);
    assert_int_equal(set_cli(o, "max-queue", "5G"), -1);
    /* integers, seconds */
    assert_int_equal(set_cli(o, "max-rooms", "7"), 0);
    assert_int_equal(set_cli(o, "max-per-ip", "0"), 0);
    assert_int_equal(set_cli(o, "max-connections", "0"), -1);
    assert_int_equal(set_cli(o, "history-on-join", "201"), -1);
    assert_int_equal(set_cli(o, "history-on-join", "200"), 0);
    assert_int_equal(set_cli(o, "retain-messages", "1099511627776"), 0); /* 2^40, 64 bits */
    assert_int_equal(set_cli(o, "head-timeout", "0"), -1);
    assert_int_equal(set_cli(o, "head-timeout", "4"), 0);
    assert_int_equal(set_cli(o, "ping-interval", "0"), 0);
    /* decimals */
    assert_int_equal(set_cli(o, "rate-limit", "2.5"), 0);
    assert_int_equal(set_cli(o, "rate-limit", "0.0005"), -1);
    assert_string_equal(options_error(o),
                        "--rate-limit: '0.0005' is not 0 or a number from 0.001 to 1000000");
    assert_int_equal(set_cli(o, "rate-limit", "fast"), -1);
    assert_int_equal(set_cli(o, "rate-limit", "1e9"), -1);
    /* booleans, flags, enums, strings */
    assert_int_equal(set_cli(o, "deflate", "off"), 0);
    assert_int_equal(set_cli(o, "deflate", "no"), -1);
    assert_string_equal(options_error(o), "--deflate: 'no' is not on or off");
    assert_int_equal(set_cli(o, "echo", "on"), 0);
    assert_int_equal(set_cli(o, "log-level", "loud"), -1);
    assert_string_equal(options_error(o),
                        "--log-level: 'loud' is not one of debug, info, warn, error, off");
    assert_int_equal(set_cli(o, "log-level", "warn"), 0);
    assert_int_equal(set_cli(o, "db", ""), -1);
    assert_string_equal(options_error(o), "--db: the path is empty");
    assert_int_equal(set_cli(o, "db", ":memory:"), 0);
    /* addresses */
    assert_int_equal(set_cli(o, "listen", "nohost"), -1);
    assert_int_equal(set_cli(o, "listen", "127.0.0.1:65536"), -1);
    assert_int_equal(set_cli(o, "listen", "[::1]:0"), 0);
    resolve_ok(o, &cfg);
    assert_int_equal(cfg.max_message, 1024 * 1024);
    assert_int_equal(cfg.max_queue, 300 * 1024);
    assert_int_equal(cfg.db_max_bytes, 5);
    assert_int_equal(cfg.chat.max_rooms, 7);
    assert_int_equal(cfg.max_per_ip, 0);
    assert_int_equal(cfg.chat.history_on_join, 200);
    assert_true(cfg.retain_messages == (uint64_t)1 << 40);
    assert_int_equal(cfg.head_timeout_ms, 4000);
    assert_int_equal(cfg.ping_ms, 0);
    assert_true(cfg.chat.rate_limit == 2.5);
    assert_false(cfg.deflate);
    assert_true(cfg.echo);
    assert_int_equal(cfg.log_level, 2);
    assert_string_equal(cfg.db_path, ":memory:");
    assert_int_equal(cfg.nlisten, 1);
    assert_string_equal(cfg.listen[0].host, "::1");
    char buf[256];
    options_format(opt("listen"), &cfg, buf, sizeof(buf));
    assert_string_equal(buf, "[::1]:0");
    options_format(opt("max-queue"), &cfg, buf, sizeof(buf));
    assert_string_equal(buf, "300K");
    options_format(opt("max-message"), &cfg, buf, sizeof(buf));
    assert_string_equal(buf, "1M");
    options_format(opt("max-connections"), &cfg, buf, sizeof(buf));
    assert_string_equal(buf, ""); /* no value: from the open-file limit */
    options_free(o);
}

static void test_checks_between_options(void **state) {
    (void)state;
    server_config_t cfg;
    options_t *o = options_new();
    /* A small message limit lowers the default text limit... */
    assert_int_equal(set_cli(o, "max-message", "2K"), 0);
    resolve_ok(o, &cfg);
    assert_int_equal(cfg.chat.max_text, 2048 - 512);
    /* ...but not one that was set: that is an error. */
    assert_int_equal(set_cli(o, "max-text", "2000"), 0);
    assert_int_equal(options_resolve(o, &cfg), -1);
    assert_non_null(strstr(options_error(o), "--max-text 2000 does not fit in --max-message 2048"));
    options_free(o);

    o = options_new();
    assert_int_equal(set_cli(o, "listen-tls", "127.0.0.1:0"), 0);
    assert_int_equal(options_resolve(o, &cfg), -1);
    assert_string_equal(options_error(o), "--listen-tls needs --tls-cert FILE and --tls-key FILE");
    assert_int_equal(set_cli(o, "tls-cert", "c.pem"), 0);
    assert_int_equal(set_cli(o, "tls-key", "k.pem"), 0);
    resolve_ok(o, &cfg);
    /* Only TLS: no default plain address. */
    assert_int_equal(cfg.nlisten, 1);
    assert_true(cfg.listen[0].tls);
    options_free(o);

    o = options_new();
    assert_int_equal(set_cli(o, "tls-key", "k.pem"), 0);
    assert_int_equal(options_resolve(o, &cfg), -1);
    assert_string_equal(options_error(o), "--tls-cert and --tls-key need a --listen-tls address");
    options_free(o);
}

static void test_precedence_and_lists(void **state) {
    (void)state;
    options_t *o = options_new();
    server_config_t cfg;
    /* Set out of order: a lower layer never replaces a higher one. */
    assert_int_equal(options_set(o, opt("max-rooms"), OPT_LAYER_CLI, "--max-rooms", "3"), 0);
    assert_int_equal(options_set(o, opt("max-rooms"), OPT_LAYER_FILE, "f:1: max-rooms", "4"), 0);
    assert_int_equal(options_set(o, opt("max-rooms"), OPT_LAYER_ENV, "TERTULIA_MAX_ROOMS", "5"), 0);
    assert_int_equal(options_set(o, opt("max-per-ip"), OPT_LAYER_FILE, "f:2: max-per-ip", "6"), 0);
    assert_int_equal(options_set(o, opt("max-per-ip"), OPT_LAYER_ENV, "E", "7"), 0);
    assert_int_equal(options_set(o, opt("rate-burst"), OPT_LAYER_FILE, "f:3: rate-burst", "8"), 0);
    /* A lower layer's bad value is still an error, named as it came. */
    assert_int_equal(options_set(o, opt("max-rooms"), OPT_LAYER_FILE, "f:9: max-rooms", "x"), -1);
    assert_string_equal(options_error(o), "f:9: max-rooms: 'x' is not a number from 1 to 100000");
    /* Lists: a layer's items add up; a higher layer replaces the list. */
    assert_int_equal(options_set(o, opt("listen"), OPT_LAYER_FILE, "f", "127.0.0.1:1"), 0);
    assert_int_equal(options_set(o, opt("listen"), OPT_LAYER_FILE, "f", "127.0.0.1:2"), 0);
    assert_int_equal(options_set(o, opt("allowed-origin"), OPT_LAYER_FILE, "f", "http://a"), 0);
    assert_int_equal(
        options_set(o, opt("allowed-origin"), OPT_LAYER_ENV, "E", "http://b, http://c"), 0);
    assert_int_equal(options_set(o, opt("allowed-origin"), OPT_LAYER_FILE, "f", "http://d"), 0);
    resolve_ok(o, &cfg);
    assert_int_equal(cfg.chat.max_rooms, 3);
    assert_int_equal(cfg.max_per_ip, 7);
    assert_int_equal(cfg.chat.rate_burst, 8);
    assert_int_equal(cfg.nlisten, 2);
    assert_int_equal(cfg.listen[0].port, 1);
    assert_int_equal(cfg.listen[1].port, 2);
    assert_int_equal(cfg.norigins, 2);
    assert_string_equal(cfg.origins[0], "http://b");
    assert_string_equal(cfg.origins[1], "http://c");
    assert_null(cfg.origins[2]);
    assert_int_equal(options_set(o, opt("listen"), OPT_LAYER_CLI, "--listen", "127.0.0.1:3"), 0);
    resolve_ok(o, &cfg);
    assert_int_equal(cfg.nlisten, 1);
    assert_int_equal(cfg.listen[0].port, 3);
    /* At most SERVER_MAX_LISTEN addresses. */
    for (int k = 1; k < SERVER_MAX_LISTEN; k++)
        assert_int_equal(set_cli(o, "listen", "127.0.0.1:4"), 0);
    assert_int_equal(set_cli(o, "listen", "127.0.0.1:4"), -1);
    assert_string_equal(options_error(o), "--listen: at most 16 addresses");
    options_free(o);
}

static void test_file(void **state) {
    (void)state;
    char path[64];
    write_file(path, "# a comment\n"
                     "; another\n"
                     "max-message = 64K\n"
                     "\n"
                     "max-rooms=12   ; inline comment\n"
                     "listen = 127.0.0.1:7001\n"
                     "listen = 127.0.0.1:7002, 127.0.0.1:7003\n"
                     "echo = on\n");
    options_t *o = options_new();
    server_config_t cfg;
    assert_int_equal(options_read_file(o, path), 0);
    resolve_ok(o, &cfg);
    assert_int_equal(cfg.max_message, 65536);
    assert_int_equal(cfg.chat.max_rooms, 12);
    assert_int_equal(cfg.nlisten, 3);
    assert_int_equal(cfg.listen[2].port, 7003);
    assert_true(cfg.echo);
    options_free(o);
    unlink(path);

    const struct {
        const char *text, *error; /* error after "PATH:" */
    } bad[] = {
        {"max-rooms = 3\n\n# x\nmax-mesage = 1K\n", "4: max-mesage: unknown option"},
        {"max-rooms = 3\nmax-queue = 5\n", "2: max-queue: '5' is not a number from 1024 to "
                                           "2147483648"},
        {"max-rooms = 3\nnot a pair\n", "2: not a 'key = value' line"},
        {"[server]\nmax-rooms = 3\n", "2: [server]: sections are not used; put every key at "
                                      "the top"},
        {"deflate = yes\nmax-rooms = 0\n", "1: deflate: 'yes' is not on or off"},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        write_file(path, bad[k].text);
        o = options_new();
        assert_int_equal(options_read_file(o, path), -1);
        char want[256];
        snprintf(want, sizeof(want), "%s:%s", path, bad[k].error);
        assert_string_equal(options_error(o), want);
        options_free(o);
        unlink(path);
    }
    o = options_new();
    assert_int_equal(options_read_file(o, "/nonexistent/tertulia.conf"), -1);
    assert_string_equal(options_error(o),
                        "/nonexistent/tertulia.conf: cannot read: No such file or directory");
    options_free(o);
}

static void test_env(void **state) {
    (void)state;
    char *env[] = {"PATH=/bin",       "TERTULIA_MAX_MESSAGE=1M", "TERTULIA_LOG_LEVEL=debug",
                   "TERTULIA_BIN=/x", "TERTULIA_max_rooms=3",    NULL};
    options_t *o = options_new();
    server_config_t cfg;
    char *text = NULL;
    size_t len = 0;
    FILE *warn = open_memstream(&text, &len);
    assert_int_equal(options_read_env(o, env, warn), 0);
    fclose(warn);
    assert_non_null(strstr(text, "tertulia: TERTULIA_BIN: not an option, ignored\n"));
    assert_non_null(strstr(text, "tertulia: TERTULIA_max_rooms: not an option, ignored\n"));
    free(text);
    resolve_ok(o, &cfg);
    assert_int_equal(cfg.max_message, 1024 * 1024);
    assert_int_equal(cfg.log_level, 0);
    assert_int_equal(cfg.chat.max_rooms, 100);
    options_free(o);

    char *bad[] = {"TERTULIA_RATE_BURST=0", NULL};
    o = options_new();
    assert_int_equal(options_read_env(o, bad, NULL), -1);
    assert_string_equal(options_error(o),
                        "TERTULIA_RATE_BURST: '0' is not a number from 1 to 1000000");
    options_free(o);
}

static void test_cli(void **state) {
    (void)state;
    char *argv[] = {"tertulia", "--listen", "127.0.0.1:0", "--echo",         "--config",
                    "x.conf",   "--listen", "127.0.0.1:1", "--print-config", NULL};
    options_t *o = options_new();
    options_cli_t cli;
    server_config_t cfg;
    assert_int_equal(options_parse_cli(o, 9, argv, &cli), 0);
    assert_string_equal(cli.config, "x.conf");
    assert_true(cli.print);
    assert_false(cli.check);
    resolve_ok(o, &cfg);
    assert_true(cfg.echo);
    assert_int_equal(cfg.nlisten, 2);
    /* A reload keeps the command line's layer over a new file's. */
    options_t *again = options_new();
    options_copy_cli(again, o);
    assert_int_equal(options_set(again, opt("listen"), OPT_LAYER_FILE, "f", "127.0.0.1:9"), 0);
    resolve_ok(again, &cfg);
    assert_int_equal(cfg.nlisten, 2);
    assert_int_equal(cfg.listen[1].port, 1);
    options_free(again);
    options_free(o);

    char *bad[] = {"tertulia", "--max-rooms", "0", NULL};
    o = options_new();
    assert_int_equal(options_parse_cli(o, 3, bad, &cli), -1);
    assert_string_equal(options_error(o), "--max-rooms: '0' is not a number from 1 to 100000");
    options_free(o);
    char *extra[] = {"tertulia", "stray", NULL};
    o = options_new();
    assert_int_equal(options_parse_cli(o, 2, extra, &cli), -1);
    assert_non_null(strstr(options_error(o), "unexpected argument 'stray'"));
    options_free(o);
}

/* --print-config's output, read back as a file, resolves to the same
 * configuration and prints the same text. */
static void test_print_round_trip(void **state) {
    (void)state;
    options_t *o = options_new();
    server_config_t cfg;
    assert_int_equal(set_cli(o, "listen", "127.0.0.1:1, [::1]:2"), 0);
    assert_int_equal(set_cli(o, "allowed-origin", "http://a.example"), 0);
    assert_int_equal(set_cli(o, "max-message", "100000"), 0);
    assert_int_equal(set_cli(o, "rate-limit", "0.5"), 0);
    assert_int_equal(set_cli(o, "log-level", "error"), 0);
    resolve_ok(o, &cfg);
    char *first = NULL, *second = NULL;
    size_t n1 = 0, n2 = 0;
    FILE *f = open_memstream(&first, &n1);
    options_print(f, &cfg);
    fclose(f);
    assert_non_null(strstr(first, "\nlisten = 127.0.0.1:1\nlisten = [::1]:2\n"));
    assert_non_null(strstr(first, "\n# max-connections =\n"));
    assert_non_null(strstr(first, "\nmax-message = 100000\n"));
    assert_non_null(strstr(first, "\n# default: 64K\n"));

    server_config_t cfg2;
    options_t *back = read_back(first, &cfg2);
    f = open_memstream(&second, &n2);
    options_print(f, &cfg2);
    fclose(f);
    assert_string_equal(first, second);
    free(first);
    free(second);
    options_free(back);
    options_free(o);
}

/* --genconfig: every option commented out with its default, those of the
 * command line set; read back as a file it resolves to exactly that. */
static void test_genconfig(void **state) {
    (void)state;
    options_t *o = options_new();
    server_config_t cfg;
    assert_int_equal(set_cli(o, "db", "/var/lib/tertulia/tertulia.db"), 0);
    resolve_ok(o, &cfg);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    options_genconfig(f, o, &cfg);
    fclose(f);
    assert_non_null(strstr(text, "\ndb = /var/lib/tertulia/tertulia.db\n"));
    assert_non_null(strstr(text, "\n#max-message = 64K\n"));
    assert_non_null(strstr(text, "\n#listen = 127.0.0.1:9090\n"));
    for (size_t i = 0; i < options_count; i++) {
        char key[64];
        snprintf(key, sizeof(key), "%s =", options_table[i].name);
        assert_non_null(strstr(text, key));
    }
    server_config_t cfg2;
    options_t *back = read_back(text, &cfg2);
    for (size_t i = 0; i < options_count; i++) {
        char a[1024], b[1024];
        options_format((int)i, &cfg, a, sizeof(a));
        options_format((int)i, &cfg2, b, sizeof(b));
        assert_string_equal(a, b);
    }
    free(text);
    options_free(back);
    options_free(o);
}

static void test_apply_live(void **state) {
    (void)state;
    server_config_t running, next;
    server_config_defaults(&running);
    options_t *o = options_new();
    assert_int_equal(set_cli(o, "log-level", "debug"), 0);
    assert_int_equal(set_cli(o, "max-message", "1M"), 0);
    resolve_ok(o, &next);
    char changed[512], restart[512];
    options_apply_live(&running, &next, changed, sizeof(changed), restart, sizeof(restart));
    assert_string_equal(changed, "log-level debug (was info)");
    assert_string_equal(restart, "max-message 1M (running 64K)");
    assert_int_equal(running.log_level, 0);
    assert_int_equal(running.max_message, 65536); /* needs a restart: kept */
    /* Nothing new the second time, except what still needs the restart. */
    options_apply_live(&running, &next, changed, sizeof(changed), restart, sizeof(restart));
    assert_string_equal(changed, "");
    assert_string_equal(restart, "max-message 1M (running 64K)");
    /* Limits apply live, and copy into the working configuration. */
    options_t *o2 = options_new();
    assert_int_equal(set_cli(o2, "max-text", "2K"), 0);
    assert_int_equal(set_cli(o2, "rate-limit", "3.5"), 0);
    assert_int_equal(set_cli(o2, "max-message", "1M"), 0);
    resolve_ok(o2, &next);
    options_apply_live(&running, &next, changed, sizeof(changed), restart, sizeof(restart));
    assert_non_null(strstr(changed, "max-text 2K (was 4K)"));
    assert_non_null(strstr(changed, "rate-limit 3.5 (was 10)"));
    assert_non_null(strstr(changed, "log-level info (was debug)"));
    server_config_t work;
    server_config_defaults(&work);
    options_copy_live(&work, &running);
    assert_int_equal(work.chat.max_text, 2048);
    assert_true(work.chat.rate_limit == 3.5);
    assert_int_equal(work.max_message, 65536);
    options_free(o2);
    options_free(o);
}

/* Live options hold plain values (copied past the options_t that resolved
 * them): never a string or a list. */
static void test_live_options_are_values(void **state) {
    (void)state;
    size_t live = 0;
    for (size_t i = 0; i < options_count; i++) {
        const opt_desc_t *d = &options_table[i];
        if (!(d->flags & OPT_LIVE))
            continue;
        live++;
        assert_true(d->type != OPT_STRING && d->type != OPT_ADDRS && d->type != OPT_STRINGS);
    }
    assert_true(live >= 10);
}

/* Every option has a name, help, and a default or what none means; the
 * defaults pass their own checks (server_config_defaults aborts if not). */
static void test_table(void **state) {
    (void)state;
    for (size_t i = 0; i < options_count; i++) {
        const opt_desc_t *d = &options_table[i];
        assert_non_null(d->help);
        assert_true(d->def != NULL || d->none != NULL);
        assert_int_equal(options_find(d->name), (int)i);
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    options_usage(f);
    fclose(f);
    for (size_t i = 0; i < options_count; i++) {
        char head[64];
        snprintf(head, sizeof(head), "\n  --%s ", options_table[i].name);
        assert_non_null(strstr(text, head));
    }
    free(text);
    /* The manual page: an item per option, its dashes as minus signs. */
    text = NULL;
    f = open_memstream(&text, &len);
    options_man(f);
    fclose(f);
    for (size_t i = 0; i < options_count; i++) {
        char head[96] = ".TP\n\\fB\\-\\-";
        size_t n = strlen(head);
        for (const char *p = options_table[i].name; *p && n + 3 < sizeof(head); p++) {
            if (*p == '-')
                head[n++] = '\\';
            head[n++] = *p;
        }
        head[n] = '\0';
        assert_non_null(strstr(text, head));
    }
    assert_non_null(strstr(text, ".SH SIGNALS\n"));
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_types_and_bounds),
        cmocka_unit_test(test_checks_between_options),
        cmocka_unit_test(test_precedence_and_lists),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_print_round_trip),
        cmocka_unit_test(test_genconfig),
        cmocka_unit_test(test_apply_live),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_live_options_are_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
