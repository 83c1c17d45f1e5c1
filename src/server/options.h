/* The options: one table (options.c) of every setting of the server, from
 * which the command line (getopt_long), --help, the config file (INI, read
 * with libinih), the TERTULIA_<OPTION> environment variables and
 * --print-config are all generated. A default, a bound or a check lives in
 * the table, or in a check function it names, and nowhere else.
 *
 * Values come in layers: defaults < file < environment < command line. A
 * layer replaces what a lower one set; for a repeatable option (--listen)
 * it replaces the lower layer's whole list. Every value is checked when it
 * is read, with an error naming where it came from (FILE:LINE: key, the
 * variable, or --option); options_resolve then writes the winning values
 * into a server_config_t and runs the checks between options. */
#ifndef TT_SERVER_OPTIONS_H
#define TT_SERVER_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "server/server.h"

typedef enum {
    OPT_FLAG,    /* bool; on the command line without a value (--echo) */
    OPT_BOOL,    /* bool: on or off */
    OPT_INT,     /* an integer in [min, max] (K and M suffixes accepted) */
    OPT_SIZE,    /* bytes in [min, max], with K (KiB) and M (MiB) suffixes */
    OPT_SECONDS, /* whole seconds in [min, max], stored as milliseconds */
    OPT_DECIMAL, /* a double: 0 or a number in [min / 1000, max] */
    OPT_STRING,  /* a string (borrowed from the options_t) */
    OPT_ADDRS,   /* HOST:PORT, repeatable: a list */
    OPT_STRINGS, /* a string, repeatable: a NULL-terminated list */
    OPT_NICKS,   /* a nickname, repeatable: the chat's admins */
    OPT_ENUM,    /* one of the names in choices, stored as its index (int) */
} opt_type_t;

enum {
    OPT_LIVE = 1,   /* SIGHUP applies a new value without a restart */
    OPT_SECRET = 2, /* --print-config masks the value */
};

typedef struct opt_desc_s opt_desc_t;

struct opt_desc_s {
    const char *name; /* the long option, the file's key; TERTULIA_<NAME> */
    opt_type_t type;
    const char *def;  /* the default, in the option's own syntax; NULL: none */
    const char *none; /* what no value means, for --help and --print-config */
    unsigned long long min, max;
    const char *arg;            /* the value's name in --help (BYTES, N, ...) */
    const char *help;           /* one paragraph; wrapped by --help and --print-config */
    size_t off, size;           /* where the value lands in server_config_t */
    int flags;                  /* OPT_LIVE, OPT_SECRET */
    const char *const *choices; /* OPT_ENUM: the names, NULL-terminated */
    bool tls;                   /* OPT_ADDRS: the addresses serve TLS */
    bool admin;                 /* OPT_ADDRS: the addresses serve only ops and admin */
};

extern const opt_desc_t options_table[];
extern const size_t options_count;

/* Where a value came from, lowest first. */
typedef enum { OPT_LAYER_DEFAULT, OPT_LAYER_FILE, OPT_LAYER_ENV, OPT_LAYER_CLI } opt_layer_t;

typedef struct options_s options_t;

options_t *options_new(void);
void options_free(options_t *o);

/* The option named name (a file key, without dashes in front), or -1. */
int options_find(const char *name);

/* Sets option i from layer at `where` (as named in errors: "FILE:LINE: key",
 * "TERTULIA_KEY" or "--key"). Checks the value. Returns 0, or -1 with the
 * error in options_error (without the "tertulia: " in front). */
int options_set(options_t *o, int i, opt_layer_t layer, const char *where, const char *value);

/* Reads an INI file: `key = value` lines, '#' and ';' comments, no
 * sections. Values land in the file layer. An unknown key, a section or a
 * bad value is an error "FILE:LINE: key: why". Returns 0 or -1. */
int options_read_file(options_t *o, const char *path);

/* Reads TERTULIA_<OPTION> variables of envp (NULL-terminated "K=V"
 * strings) into the environment layer. A bad value is an error naming the
 * variable; a TERTULIA_ variable that names no option is a warning written
 * to warn (if not NULL), since other tools share the prefix
 * (TERTULIA_BIN). Returns 0 or -1. */
int options_read_env(options_t *o, char *const *envp, FILE *warn);

/* Parses the command line into the CLI layer. Besides the table's options
 * it knows --config FILE, --check-config, --print-config, --genconfig,
 * --help, --help-man and --version. Returns 0, or -1 on a bad option (the
 * error already printed by getopt, or in options_error). */
typedef struct options_cli_s {
    const char *config; /* --config FILE, or NULL */
    bool check, print, genconfig, help, help_man, version;
} options_cli_t;
int options_parse_cli(options_t *o, int argc, char **argv, options_cli_t *out);

/* Copies the command line's layer from src into o (a reload reads the file
 * and the environment again, under the same command line). */
void options_copy_cli(options_t *o, const options_t *src);

/* Writes the effective values into cfg (defaults where nothing is set) and
 * runs the checks between options (a --max-text that fits --max-message,
 * TLS needs a certificate and a key). Strings in cfg are borrowed from o.
 * Loading the TLS files is the caller's (server_tls_load). Returns 0 or -1
 * (options_error). */
int options_resolve(options_t *o, server_config_t *cfg);

const char *options_error(const options_t *o);

/* The value of option i in cfg, in the option's syntax ("64K", "on", the
 * addresses separated by ", "); empty when it has none. */
void options_format(int i, const server_config_t *cfg, char *buf, size_t len);

/* After a reload: for every option whose value in next differs from
 * running, an OPT_LIVE one is copied into running and named in changed
 * ("log-level debug (was info)", separated by "; "); the others are named
 * in restart. Both empty when nothing differs. */
void options_apply_live(server_config_t *running, const server_config_t *next, char *changed,
                        size_t clen, char *restart, size_t rlen);

/* Copies the value of every OPT_LIVE option from `from` into `to` (the
 * server's working configuration, after options_apply_live updated the
 * running one). Live options hold plain values, never pointers into the
 * options_t that resolved them, so the copy outlives it. */
void options_copy_live(server_config_t *to, const server_config_t *from);

/* --help, generated from the table. */
void options_usage(FILE *out);

/* --help-man: the manual page tertulia(8), in roff, its OPTIONS section
 * generated from the table (the build writes it to tertulia.8). */
void options_man(FILE *out);

/* --genconfig: a config file that names every option, its help and its
 * default as comments, with the `key = default` line commented out; the
 * options that o's command line sets are written as real `key = value`
 * lines (the packaged /etc/tertulia/tertulia.conf sets db so). */
void options_genconfig(FILE *out, const options_t *o, const server_config_t *cfg);

/* --print-config: every option with its help and default as comments, then
 * `key = value` (one line per item of a list; a commented line when it has
 * no value). A valid config file. */
void options_print(FILE *out, const server_config_t *cfg);

#endif
