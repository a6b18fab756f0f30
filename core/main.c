/* main.c: listbossd's command line. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "cli.h"
#include "daemon.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: listbossd [-c FILE] [-l ADDR:PORT] [-d DBFILE] [-t] [-V] [COMMAND ...]\n"
            "  -c FILE       configuration file (Lua); without it, the embedded demo configuration\n"
            "  -l ADDR:PORT  listen here instead of the configured address\n"
            "  -d DBFILE     use this SQLite database instead of the configured one\n"
            "  -t            check the configuration and exit (0 if good, 1 with the reason)\n"
            "  -V            print the version and exit\n"
            "  COMMAND       catalogue, segmentations, segmentation add|remove, evaluate, dead-letters,\n"
            "                replay: run `listbossd help` for the list\n");
}

static int check_config(const lb_daemon_options *opts)
{
    lb_error err = {0};
    lb_config *cfg = lb_daemon_load_config(opts, &err);
    if (!cfg) {
        fprintf(stderr, "listbossd: configuration error: %s%s%s\n", err.field, *err.field ? ": " : "",
                err.message);
        return 1;
    }
    printf("listbossd: configuration %s is ok (%zu account%s)\n", opts->config_path ? opts->config_path : "(demo)",
           cfg->n_accounts, cfg->n_accounts == 1 ? "" : "s");
    lb_config_free(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    lb_daemon_options opts = {0};
    int check_only = 0, opt;
    while ((opt = getopt(argc, argv, "c:l:d:tVh")) != -1) {
        switch (opt) {
        case 'c': opts.config_path = optarg; break;
        case 'l': opts.listen_override = optarg; break;
        case 'd': opts.database_override = optarg; break;
        case 't': check_only = 1; break;
        case 'V': printf("listbossd %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc && check_only) {
        /* -t promises to check and exit: never run a command (replay writes) */
        fprintf(stderr, "listbossd: -t checks the configuration and takes no command (got \"%s\")\n", argv[optind]);
        return 2;
    }
    if (optind < argc)
        return lb_cli_run(&opts, argc - optind, argv + optind);
    return check_only ? check_config(&opts) : lb_daemon_run(&opts);
}
