// Command mandate is a PostgreSQL wire-protocol proxy that decides, for
// every statement, what the caller may touch. See README.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one `mandate <name>` subcommand.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"serve":    {"run the proxy", runServe},
	"passwd":   {"print a SCRAM-SHA-256 verifier line for the --passwd-file", runPasswd},
	"migrate":  {"create or upgrade the policy store's schema", runMigrate},
	"delegate": {"grant, revoke or list delegations (one user acting for another)", runDelegate},
	"consent":  {"grant, withdraw or list consents to purposes of use", runConsent},
	"agent":    {"register, disable or list AI agents", runAgent},
	"token":    {"mint a development JWT for trying personas (or create the dev key)", runToken},
	"demo":     {"try every persona: a throwaway bank database behind an enforcing proxy", runDemo},
	"audit":    {"verify an audit log's hash chain", runAudit},
	"explain":  {"print the decision and the rewritten SQL for a statement, without running it", runExplain},
	"check":    {"validate policies and masks against the Cedar schema and the live catalog", runCheck},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mandate: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, errExplained) {
			return 1
		}
		fmt.Fprintf(stderr, "mandate %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "mandate: a PostgreSQL proxy that enforces who may see and change which rows and columns.")
	fmt.Fprintln(w, "\nUsage: mandate <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'mandate <command> --help' for a command's flags.")
}

// printFlags writes a command's usage line and flag defaults.
func printFlags(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "Usage: %s\n\nFlags:\n", synopsis)
	fs.SetOutput(w)
	fs.PrintDefaults()
}
