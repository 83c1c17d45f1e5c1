/* tertulia: the options (server/options.h: the command line, the
 * environment, the --config file), then server_run(); or a subcommand
 * (tertulia backup), recognised before the option table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/xmalloc.h"
#include "server/options.h"
#include "server/server.h"
#include "store/store.h"

/* tertulia backup --db FILE [--force] OUT: a consistent copy of the history
 * database, also while a server runs on it (store_backup). Exits 0 with the
 * count of messages copied, 1 if the copy failed, 2 on a usage error. */
static int backup(int argc, char **argv) {
    static const char usage[] = "usage: tertulia backup --db FILE [--force] OUT\n";
    const char *db = NULL, *out = NULL;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            db = argv[++i];
        } else if (strncmp(argv[i], "--db=", 5) == 0) {
            db = argv[i] + 5;
        } else if (strcmp(argv[i], "--force") == 0) {
            force = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (argv[i][0] != '-' && out == NULL) {
            out = argv[i];
        } else {
            fprintf(stderr, "tertulia backup: unexpected argument '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (db == NULL || out == NULL) {
        fprintf(stderr, "tertulia backup: %s\n%s",
                db == NULL ? "--db FILE is needed" : "OUT is needed", usage);
        return 2;
    }
    int64_t messages = 0;
    char err[1024];
    if (store_backup(db, out, force, &messages, err, sizeof(err)) < 0) {
        fprintf(stderr, "tertulia backup: %s\n", err);
        return 1;
    }
    printf("tertulia backup: %s -> %s: %lld messages\n", db, out, (long long)messages);
    return 0;
}

/* Usage errors exit 2, as getopt's do. */
static int usage_error(const options_t *o) {
    if (options_error(o)[0] != '\0')
        fprintf(stderr, "tertulia: %s\n", options_error(o));
    else
        fprintf(stderr, "Try 'tertulia --help'.\n");
    return 2;
}

static int run(options_t *o, int argc, char **argv) {
    options_cli_t cli;
    if (options_parse_cli(o, argc, argv, &cli) < 0)
        return usage_error(o);
    if (cli.help) {
        options_usage(stdout);
        return 0;
    }
    if (cli.help_man) {
        options_man(stdout);
        return 0;
    }
    if (cli.version) {
        printf("tertulia %s\n", TT_VERSION);
        return 0;
    }
    /* --genconfig writes the defaults and this command line only: the file
     * it makes does not depend on the environment it was made in. */
    if (!cli.genconfig && cli.config != NULL && options_read_file(o, cli.config) < 0)
        return usage_error(o);
    if (!cli.genconfig && options_read_env(o, environ, stderr) < 0)
        return usage_error(o);
    server_config_t cfg;
    if (options_resolve(o, &cfg) < 0)
        return usage_error(o);
    if (cli.genconfig) {
        options_genconfig(stdout, o, &cfg);
        return 0;
    }
    cfg.config_path = cli.config;
    cfg.options = o;
    if (cli.print) {
        options_print(stdout, &cfg);
        return 0;
    }
    /* A TLS file that does not load is a usage error, found before
     * anything starts. */
    bool any_tls = false;
    for (size_t i = 0; i < cfg.nlisten; i++)
        any_tls |= cfg.listen[i].tls;
    char err[600];
    if (any_tls && server_tls_load(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "tertulia: %s\n", err);
        return 2;
    }
    if (server_admin_load(&cfg, err, sizeof(err)) < 0 ||
        server_jwt_load(&cfg, err, sizeof(err)) < 0 ||
        server_cluster_load(&cfg, err, sizeof(err)) < 0) {
        server_tls_free(&cfg);
        server_jwt_free(&cfg);
        fprintf(stderr, "tertulia: %s\n", err);
        return 2;
    }
    if (cli.check) {
        server_tls_free(&cfg);
        server_jwt_free(&cfg);
        server_cluster_free(&cfg);
        printf("tertulia: configuration OK (%s)\n",
               cli.config != NULL ? cli.config : "no --config file");
        return 0;
    }
    int r = server_run(&cfg);
    server_jwt_free(&cfg);
    server_cluster_free(&cfg);
    return r == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    /* jansson allocates like the rest of the server: out of memory aborts
     * instead of leaving a reply half built. */
    json_set_alloc_funcs(xmalloc, free);
    if (argc > 1 && strcmp(argv[1], "backup") == 0)
        return backup(argc - 1, argv + 1);
    options_t *o = options_new();
    int r = run(o, argc, argv);
    options_free(o);
    return r;
}
