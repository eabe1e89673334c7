package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mandate-proxy/mandate/policy/identity"
)

const tokenUsage = `mandate token --sub USER [--act ACTOR]… [--scope S]… [--ttl 1h] [--claim KEY=VALUE]… [flags]
       mandate token --init-dev-key DIR

Prints a JWT signed with the development key (--dev-key, config dev_key), for trying
personas with psql:  PGPASSWORD=$(mandate token --sub alice) psql …
iss is --jwt-issuer, aud the first --jwt-audience. Only keys made by --init-dev-key are
accepted: mandate refuses to mint with any other key.

Actor chain: --act lists who acts for the subject, closest to the subject first and the
connected actor last (as in policy.Scope.Actors). "agent:ID" names an agent, anything
else a delegate. --sub alice --act bob --act agent:assistant reads "assistant acts for
bob, who acts for alice" and nests as
  {"sub":"alice","act":{"sub":"agent:assistant","act":{"sub":"bob"}}}`

// runToken mints development tokens, or creates the development key.
func runToken(args []string, stdout, stderr io.Writer) error {
	var (
		initDir string
		c       identity.MintClaims
		actors  []string
		claims  = claimFlag{}
	)
	cfg, _, err := parseCommand("token", tokenUsage, 0, args, stdout, func(fs *flag.FlagSet) {
		fs.StringVar(&initDir, "init-dev-key", "", "create DIR/"+identity.DevKeyFile+" and its JWKS DIR/"+identity.DevJWKSFile+", print the config keys, and exit")
		fs.StringVar(&c.Subject, "sub", "", "subject whose data rights apply")
		fs.Var(&listFlag{dst: &actors}, "act", "actor chain, closest to the subject first; agent:ID for an agent (repeat or comma-separate)")
		fs.Var(&listFlag{dst: &c.Scopes}, "scope", "OAuth scope, e.g. read:accounts (repeat or comma-separate)")
		fs.DurationVar(&c.TTL, "ttl", time.Hour, "token lifetime (mandate serve refuses more than its --jwt-max-lifetime, 24h by default)")
		fs.Var(claims, "claim", "extra claim KEY=VALUE; VALUE is JSON when it parses (true, 3, [\"a\"]), else a string (repeatable)")
	})
	if err != nil {
		return err
	}
	if initDir != "" {
		return initDevKey(initDir, stdout)
	}
	if c.Subject == "" {
		return errors.New("--sub is required (see 'mandate token --help')")
	}
	if cfg.DevKey == "" {
		return errors.New("no development key: set --dev-key (config dev_key), or create one with mandate token --init-dev-key DIR")
	}
	if c.TTL <= 0 {
		return fmt.Errorf("--ttl %s: want a positive duration", c.TTL)
	}
	for _, a := range actors {
		actor, err := identity.ParseActor(a)
		if err != nil {
			return fmt.Errorf("--act %q: %w", a, err)
		}
		c.Actors = append(c.Actors, actor)
	}
	key, err := identity.LoadDevKey(cfg.DevKey)
	if err != nil {
		return fmt.Errorf("--dev-key %s: %w", cfg.DevKey, err)
	}
	c.Issuer = cfg.JWTIssuer
	if len(cfg.JWTAudience) > 0 {
		c.Audience = cfg.JWTAudience[:1]
	}
	c.Extra = claims
	tok, err := identity.Mint(key, c)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// initDevKey writes a development key and its JWKS into dir and prints
// them as config keys, ready to paste into mandate.yaml.
func initDevKey(dir string, stdout io.Writer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := identity.GenerateDevKey(dir); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w (it may have signed tokens in use; remove it to start over)", err)
		}
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "dev_key: %s\njwks_file: %s\njwt_allow_dev_keys: true\n",
		filepath.Join(abs, identity.DevKeyFile), filepath.Join(abs, identity.DevJWKSFile))
	return nil
}

// claimFlag collects repeated --claim KEY=VALUE.
type claimFlag map[string]any

func (c claimFlag) String() string {
	parts := make([]string, 0, len(c))
	for k, v := range c {
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	return strings.Join(parts, ",")
}

func (c claimFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want KEY=VALUE")
	}
	if _, dup := c[k]; dup {
		return fmt.Errorf("claim %q given twice", k)
	}
	var parsed any
	if err := json.Unmarshal([]byte(v), &parsed); err != nil {
		parsed = v // a bare word such as high or laptop-17
	}
	c[k] = parsed
	return nil
}
