package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mandate-proxy/mandate/proxy"
)

// runPasswd prints `user:SCRAM-SHA-256$…` for the verifier file. The
// password comes from standard input (one line), never from a flag, so it
// stays out of shell history and process listings.
func runPasswd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlags(stdout, fs, "mandate passwd USER < password-file\n\nReads the password from standard input and prints a line for --passwd-file.")
		}
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: mandate passwd USER (password on standard input)")
	}
	user := fs.Arg(0)
	if strings.ContainsAny(user, ":\n") {
		return errors.New("user name must not contain ':' or a newline")
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return errors.New("empty password on standard input")
	}
	v, err := proxy.NewVerifier(password)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s:%s\n", user, v)
	return nil
}
