// Package cli is Eddy's command-line client: the `property`, `action`,
// `activation`, `package`, `namespace` and `list` commands, compatible in flags, requests,
// output and exit statuses with the Apache OpenWhisk `wsk` CLI for what Eddy
// implements. It reads and writes the same ~/.wskprops file.
//
// Run is the whole CLI: it takes the arguments (without the program name),
// an Env carrying the streams, the environment and the home directory, and
// returns the exit status. It has no globals and never exits the process,
// so other packages (cmd/eddy, end-to-end tests) can call it directly.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"

	"github.com/eddy-faas/eddy/internal/client"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Version is the CLI version printed by `property get --cliversion`.
const Version = "1.0.0"

// Env is what Run needs from its surroundings.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads an environment variable (os.Getenv); nil reads nothing.
	Getenv func(string) string
	// HomeDir holds .wskprops unless WSK_CONFIG_FILE names another file.
	HomeDir string
	// HTTPClient, when set, is used for every API call (tests, embedding).
	HTTPClient *http.Client
	// EtcdStatus, when set, reads the cluster status from etcd at the
	// endpoints (`eddy status --etcd`); cmd/eddy wires it to internal/cluster.
	EtcdStatus func(ctx context.Context, endpoints []string) (*whisk.ClusterStatus, error)
}

// Commands are the top-level commands Run implements; cmd/eddy can use
// Handles to route them here.
var commandNames = []string{"property", "action", "activation", "api", "package", "namespace", "list", "trigger", "rule", "status", "help"}

// Handles reports whether name is one of the CLI's top-level commands.
func Handles(name string) bool {
	for _, c := range commandNames {
		if c == name {
			return true
		}
	}
	return false
}

// Exit statuses that are not derived from an HTTP status.
const (
	exitOK      = 0
	exitGeneral = 1
	exitUsage   = 2
)

// Run runs one CLI command and returns the process exit status.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	r := &runner{ctx: ctx, env: env, out: env.Stdout, errw: env.Stderr}
	return r.finish(r.dispatch(args))
}

// runner is the state of one Run.
type runner struct {
	ctx  context.Context
	env  Env
	out  io.Writer
	errw io.Writer
	g    globals
}

// globals are the flags every command accepts.
type globals struct {
	apihost  string
	auth     string
	insecure bool
	verbose  bool
}

// register puts the global flags on fs, except those named in skip (a
// command's own flag of the same name wins).
func (g *globals) register(fs *flag.FlagSet, skip ...string) {
	skipped := func(n string) bool {
		for _, s := range skip {
			if s == n {
				return true
			}
		}
		return false
	}
	if !skipped("apihost") {
		fs.StringVar(&g.apihost, "apihost", g.apihost, "")
	}
	if !skipped("auth") {
		fs.StringVar(&g.auth, "auth", g.auth, "")
		fs.StringVar(&g.auth, "u", g.auth, "")
	}
	fs.BoolVar(&g.insecure, "insecure", g.insecure, "")
	fs.BoolVar(&g.insecure, "i", g.insecure, "")
	fs.BoolVar(&g.verbose, "verbose", g.verbose, "")
	fs.BoolVar(&g.verbose, "v", g.verbose, "")
	fs.BoolVar(&g.verbose, "debug", g.verbose, "")
	fs.BoolVar(&g.verbose, "d", g.verbose, "")
}

// ---------------------------------------------------------------------------
// Errors and exit statuses

// exitError ends a command with a status; msg (if any) is printed as
// "error: msg" on one line, with a pointer to the command's help when usage
// names the command.
type exitError struct {
	code  int
	msg   string
	usage string // command path for the help hint, e.g. "action create"
}

func (e *exitError) Error() string { return e.msg }

func usageErr(cmd, format string, a ...any) error {
	if cmd == "" {
		return &exitError{code: exitUsage, msg: fmt.Sprintf(format, a...) + " (see 'eddy --help')"}
	}
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, a...), usage: cmd}
}

func generalErr(format string, a ...any) error {
	return &exitError{code: exitGeneral, msg: fmt.Sprintf(format, a...)}
}

// silentExit ends with a status without printing (the command printed).
func silentExit(code int) error { return &exitError{code: code} }

// errHelpShown ends a command that printed its help.
var errHelpShown = errors.New("help shown")

func (r *runner) finish(err error) int {
	if err == nil || errors.Is(err, errHelpShown) {
		return exitOK
	}
	if xe, ok := err.(*exitError); ok {
		switch {
		case xe.msg != "" && xe.usage != "":
			fmt.Fprintf(r.errw, "error: %s (see 'eddy %s --help')\n", xe.msg, xe.usage)
		case xe.msg != "":
			fmt.Fprintf(r.errw, "error: %s\n", xe.msg)
		}
		return xe.code
	}
	fmt.Fprintf(r.errw, "error: %s\n", err)
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.ExitCode()
	}
	var xe *exitError
	if errors.As(err, &xe) {
		return xe.code
	}
	return exitGeneral
}

// ---------------------------------------------------------------------------
// Dispatch

type leaf func(r *runner, args []string) error

type group struct {
	name  string
	usage string
	subs  map[string]leaf
}

func (r *runner) groups() map[string]*group {
	return map[string]*group{
		"property": {name: "property", usage: usageProperty, subs: map[string]leaf{
			"set": (*runner).propertySet, "get": (*runner).propertyGet, "unset": (*runner).propertyUnset,
		}},
		"action": {name: "action", usage: usageAction, subs: map[string]leaf{
			"create": func(r *runner, a []string) error { return r.actionPut(a, false) },
			"update": func(r *runner, a []string) error { return r.actionPut(a, true) },
			"get":    (*runner).actionGet, "list": (*runner).actionList,
			"delete": (*runner).actionDelete, "invoke": (*runner).actionInvoke,
		}},
		"activation": {name: "activation", usage: usageActivation, subs: map[string]leaf{
			"list": (*runner).activationList, "get": (*runner).activationGet,
			"logs": (*runner).activationLogs, "result": (*runner).activationResult,
		}},
		"api": {name: "api", usage: usageAPI, subs: map[string]leaf{
			"create": (*runner).apiCreate, "get": (*runner).apiGet, "list": (*runner).apiList,
			"delete": (*runner).apiDelete,
		}},
		"namespace": {name: "namespace", usage: usageNamespace, subs: map[string]leaf{
			"list": (*runner).namespaceList,
			"get":  func(r *runner, a []string) error { return r.namespaceGet("namespace get", a) },
		}},
		"package": {name: "package", usage: usagePackage, subs: map[string]leaf{
			"create": func(r *runner, a []string) error { return r.packagePut(a, false) },
			"update": func(r *runner, a []string) error { return r.packagePut(a, true) },
			"bind":   (*runner).packageBind, "get": (*runner).packageGet,
			"list": (*runner).packageList, "delete": (*runner).packageDelete,
		}},
		"trigger": {name: "trigger", usage: usageTrigger, subs: triggerCommands()},
		"rule":    {name: "rule", usage: usageRule, subs: ruleCommands()},
	}
}

// aliases wsk accepts for sub-commands.
var subAliases = map[string]string{"ls": "list", "rm": "delete", "del": "delete"}

func (r *runner) dispatch(args []string) error {
	// Global flags may precede the command.
	rest, err := r.parseGlobals("", args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		fmt.Fprint(r.out, usageRoot)
		return nil
	}
	cmd, rest := rest[0], rest[1:]
	if cmd == "help" {
		return r.help(rest)
	}
	if cmd == "status" {
		return r.status(rest)
	}
	if cmd == "list" {
		return r.namespaceGet("list", rest)
	}
	g, ok := r.groups()[cmd]
	if !ok {
		return usageErr("", "unknown command %q", cmd)
	}
	rest, err = r.parseGlobals(cmd, rest)
	if err != nil {
		return err
	}
	if len(rest) == 0 || rest[0] == "help" {
		fmt.Fprint(r.out, g.usage)
		return nil
	}
	sub := rest[0]
	if a, ok := subAliases[sub]; ok {
		sub = a
	}
	run, ok := g.subs[sub]
	if !ok {
		return usageErr(cmd, "unknown command \"%s %s\"", cmd, rest[0])
	}
	return run(r, rest[1:])
}

func (r *runner) help(path []string) error {
	if len(path) == 0 {
		fmt.Fprint(r.out, usageRoot)
		return nil
	}
	if path[0] == "status" {
		fmt.Fprint(r.out, usageStatus)
		return nil
	}
	g, ok := r.groups()[path[0]]
	if !ok {
		return usageErr("", "unknown command %q", path[0])
	}
	if len(path) > 1 {
		if u, ok := leafHelp(g.name + " " + path[1]); ok {
			fmt.Fprint(r.out, u)
			return nil
		}
	}
	fmt.Fprint(r.out, g.usage)
	return nil
}

// parseGlobals parses global flags up to the first non-flag argument;
// -h/--help print the root or group usage.
func (r *runner) parseGlobals(cmd string, args []string) ([]string, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	r.g.register(fs)
	if err := fs.Parse(expandShortFlags(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if cmd == "" {
				fmt.Fprint(r.out, usageRoot)
			} else {
				fmt.Fprint(r.out, r.groups()[cmd].usage)
			}
			return nil, errHelpShown
		}
		return nil, usageErr(cmd, "%v", err)
	}
	return fs.Args(), nil
}

// newFlags returns a FlagSet for a leaf command with the global flags on it
// (but those named in skip).
func (r *runner) newFlags(cmd string, skip ...string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	r.g.register(fs, skip...)
	return fs
}

// parse parses flags anywhere among the arguments (as wsk does) and returns
// the positional ones. -h/--help prints the command's usage.
func (r *runner) parse(fs *flag.FlagSet, cmd string, args []string) ([]string, error) {
	args = expandShortFlags(fs, args)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				u, _ := leafHelp(cmd)
				fmt.Fprint(r.out, u)
				return nil, errHelpShown
			}
			return nil, usageErr(cmd, "%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// expandShortFlags splits combined one-letter flags, as wsk's flag parser
// (pflag) accepts them: "-br" is "-b -r" when b and r are one-letter
// flags of fs and every letter but the last is a boolean (the last may
// take a value: "-bt 500"). An argument that is itself a flag of fs, that
// has '=' or that starts with "--", and everything after "--", are left
// alone.
func expandShortFlags(fs *flag.FlagSet, args []string) []string {
	var out []string
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) < 3 || a[0] != '-' || a[1] == '-' || strings.Contains(a, "=") || fs.Lookup(a[1:]) != nil {
			out = append(out, a)
			continue
		}
		letters := a[1:]
		ok := true
		for j := 0; j < len(letters) && ok; j++ {
			f := fs.Lookup(letters[j : j+1])
			ok = f != nil && (j == len(letters)-1 || isBoolFlag(f))
		}
		if !ok {
			out = append(out, a)
			continue
		}
		for j := 0; j < len(letters); j++ {
			out = append(out, "-"+letters[j:j+1])
		}
	}
	return out
}

// isBoolFlag reports whether f takes no value.
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	m := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { m[f.Name] = true })
	return m
}

// checkArgs is wsk's argument-count check.
func checkArgs(cmd string, args []string, min, max int, required string) error {
	if len(args) < min {
		return usageErr(cmd, "Invalid argument(s). %s", required)
	}
	if len(args) > max {
		return usageErr(cmd, "Invalid argument(s): %s. %s", strings.Join(args[max:], ", "), required)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Configuration

// config is the effective configuration: flags over EDDY_* over .wskprops.
type config struct {
	apihost   string
	auth      string
	namespace string
}

func (r *runner) config() (config, error) {
	p, err := r.loadProps()
	if err != nil {
		return config{}, err
	}
	c := config{apihost: p.get("APIHOST"), auth: p.get("AUTH"), namespace: p.get("NAMESPACE")}
	if v := r.env.Getenv("EDDY_APIHOST"); v != "" {
		c.apihost = v
	}
	if v := r.env.Getenv("EDDY_AUTH"); v != "" {
		c.auth = v
	}
	if r.g.apihost != "" {
		c.apihost = r.g.apihost
	}
	if r.g.auth != "" {
		c.auth = r.g.auth
	}
	if c.namespace == "" {
		c.namespace = "_"
	}
	return c, nil
}

// listArgs are what every `list` command takes: --limit/-l, --skip/-s,
// --name-sort/-n and at most one argument (a namespace, or for actions a
// package), with the client to list with.
type listArgs struct {
	limit, skip int
	nameSort    bool
	arg         string // the argument, or ""
	cl          *client.Client
	cfg         config
}

// parseList parses a list command's flags and argument, as wsk does.
func (r *runner) parseList(cmd string, args []string) (listArgs, error) {
	var l listArgs
	fs := r.newFlags(cmd)
	for _, n := range []string{"limit", "l"} {
		fs.IntVar(&l.limit, n, defaultListMax, "")
	}
	for _, n := range []string{"skip", "s"} {
		fs.IntVar(&l.skip, n, 0, "")
	}
	fs.BoolVar(&l.nameSort, "name-sort", false, "")
	fs.BoolVar(&l.nameSort, "n", false, "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return l, err
	}
	if err := checkArgs(cmd, pos, 0, 1, "An optional namespace is the only valid argument."); err != nil {
		return l, err
	}
	if len(pos) == 1 {
		l.arg = pos[0]
	}
	l.cl, l.cfg, err = r.client(true)
	return l, err
}

// getArgs are the parsed flags and arguments of a get command: `KIND get
// NAME [FIELD] [--summary]`, with the client to read with.
type getArgs struct {
	cmd, kind  string // "package get", "package"
	summary    bool
	name       string // NAME as given
	ns, entity string // NAME split, the default namespace filled in
	field      string // FIELD, or ""
	cl         *client.Client
	cfg        config
}

// parseGet parses a get command's flags and arguments, as wsk does: one
// NAME ("A KIND name is required." without it), an optional FIELD and
// --summary/-s.
func (r *runner) parseGet(kind string, args []string) (getArgs, error) {
	g := getArgs{cmd: kind + " get", kind: kind}
	fs := r.newFlags(g.cmd)
	fs.BoolVar(&g.summary, "summary", false, "")
	fs.BoolVar(&g.summary, "s", false, "")
	pos, err := r.parse(fs, g.cmd, args)
	if err != nil {
		return g, err
	}
	if err := checkArgs(g.cmd, pos, 1, 2, "A "+kind+" name is required."); err != nil {
		return g, err
	}
	if g.cl, g.cfg, err = r.client(true); err != nil {
		return g, err
	}
	g.name = pos[0]
	g.ns, g.entity = client.SplitName(g.name, g.cfg.namespace)
	if len(pos) == 2 {
		g.field = pos[1]
	}
	return g, nil
}

// show prints what a get command read: its summary (--summary), one
// field of it (FIELD) or all of it, as wsk does.
func (r *runner) show(g getArgs, v any, summary func()) error {
	switch {
	case g.summary:
		summary()
	case g.field != "":
		return printField(r.out, g.cmd, g.kind, g.entity, v, g.field)
	default:
		fmt.Fprintf(r.out, "ok: got %s %s\n", g.kind, g.entity)
		printJSON(r.out, v)
	}
	return nil
}

// client builds the API client; needAuth is false for calls without auth.
func (r *runner) client(needAuth bool) (*client.Client, config, error) {
	c, err := r.config()
	if err != nil {
		return nil, c, err
	}
	if c.apihost == "" {
		return nil, c, generalErr("The API host is not set. Run 'eddy property set --apihost HOST' (e.g. http://127.0.0.1:3233), or pass --apihost.")
	}
	if needAuth && c.auth == "" {
		return nil, c, generalErr("The authorization key is not set. Run 'eddy property set --auth UUID:KEY', or pass --auth.")
	}
	cfg := client.Config{
		APIHost:    c.apihost,
		Auth:       c.auth,
		Namespace:  c.namespace,
		Insecure:   r.g.insecure,
		HTTPClient: r.env.HTTPClient,
		UserAgent:  fmt.Sprintf("OpenWhisk-CLI/1.0 (eddy %s) %s %s", Version, runtime.GOOS, runtime.GOARCH),
	}
	if r.g.verbose {
		cfg.Verbose = r.out
	}
	cl, err := client.New(cfg)
	if err != nil {
		return nil, c, generalErr("%v", err)
	}
	return cl, c, nil
}
