/* tertulia: the options (server/options.h: the command line, the
 * environment, the --config file), then server_run(). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "core/xmalloc.h"
#include "server/options.h"
#include "server/server.h"

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
    if (cli.check) {
        server_tls_free(&cfg);
        printf("tertulia: configuration OK (%s)\n",
               cli.config != NULL ? cli.config : "no --config file");
        return 0;
    }
    return server_run(&cfg) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    /* jansson allocates like the rest of the server: out of memory aborts
     * instead of leaving a reply half built. */
    json_set_alloc_funcs(xmalloc, free);
    options_t *o = options_new();
    int r = run(o, argc, argv);
    options_free(o);
    return r;
}
