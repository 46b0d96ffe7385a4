// Package admin is `eddy admin`, the operator's tool for tenants, after
// OpenWhisk's wskadmin: `user create|get|delete|list` manages subjects,
// their namespaces and their keys, and `limits set|get|delete` a namespace's
// limits. Like wskadmin, which writes the database directly, it talks to the
// store and not to the API: standalone's SQLite file (--data-dir) or a
// cluster's PostgreSQL (--postgres). It can run while the platform runs;
// controllers see its writes within 2 s, when their cached identities
// expire (docs/tenants.md).
//
// The data model is wskadmin's: a subject owns one or more namespaces and
// has one key (uuid:key) in each; several subjects may share a namespace.
// Limits belong to a namespace.
package admin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Store is what admin needs of the store (store.Store has it).
type Store interface {
	IdentityByUUID(ctx context.Context, uuid string) (whisk.Identity, error)
	ListIdentities(ctx context.Context, namespace string) ([]whisk.Identity, error)
	DeleteIdentity(ctx context.Context, uuid string) error
	SetSubjectBlocked(ctx context.Context, subject string, blocked bool) (int, error)
	CreateIdentity(ctx context.Context, id whisk.Identity, check func([]whisk.Identity, *whisk.Identity) error) error
	GetNamespaceLimits(ctx context.Context, namespace string) (whisk.NamespaceLimits, error)
	PutNamespaceLimits(ctx context.Context, namespace string, l whisk.NamespaceLimits) error
	DeleteNamespaceLimits(ctx context.Context, namespace string) error
	Close() error
}

// Config is what Run needs from its caller.
type Config struct {
	Stdout, Stderr io.Writer
	// DefaultDataDir is --data-dir's default (standalone's).
	DefaultDataDir string
	// Getenv reads EDDY_POSTGRES, --postgres's default (nil: none).
	Getenv func(string) string
	// Open opens the store: PostgreSQL when postgresURL is set, else the
	// SQLite database in dataDir.
	Open func(ctx context.Context, dataDir, postgresURL string) (Store, error)
}

// MinSubjectLength is wskadmin's shortest subject.
const MinSubjectLength = 5

// Exit codes: 0 done, 1 failed (not found, exists, store error), 2 usage.
const (
	exitFail  = 1
	exitUsage = 2
)

// usageError is bad command-line input (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

const usageText = `Usage: eddy admin [--data-dir DIR | --postgres URL] COMMAND

Users (subjects, their namespaces and keys):
  user create SUBJECT [--namespace NS] [--auth UUID:KEY]
                        create SUBJECT with a key in NS (default: SUBJECT) and
                        print the key, once: only its hash is stored; on an
                        existing subject, add namespace NS
  user get SUBJECT [--namespace NS] [--all]
                        print the UUID of SUBJECT's key in NS (or every
                        "namespace uuid"); the key itself can't be read back
  user delete SUBJECT [--namespace NS]
                        delete SUBJECT's keys (or only its key in NS)
  user block SUBJECT...  block subjects: their keys authenticate nothing (401
                        on every API call, as in OpenWhisk) until unblocked
  user unblock SUBJECT...
  user whois UUID:KEY    print the subject and namespace of a key, as wskadmin
                        does ("Subject id is not recognized" for an unknown
                        key)
  user list [NAMESPACE] [--key]
                        list subjects (of NAMESPACE, or "subject namespace" of all;
                        --key: their keys' UUIDs first)

Namespace limits (unset limits take the platform's defaults):
  limits set NAMESPACE [--invocationsPerMinute N] [--concurrentInvocations N] [--firesPerMinute N]
                        (--concurrentContainers is the same limit)
  limits get NAMESPACE
  limits delete NAMESPACE

Store: --data-dir (default ~/.eddy/standalone, the SQLite database of
'eddy standalone') or --postgres URL (a cluster's database; default
$EDDY_POSTGRES). Changes take effect within 2 s in running controllers.
`

// Run runs `eddy admin args…` and returns the exit code.
func Run(ctx context.Context, args []string, cfg Config) int {
	err := run(ctx, args, cfg)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(cfg.Stdout, usageText)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(cfg.Stderr, "eddy admin: %v\n\n%s", err, usageText)
		return exitUsage
	}
	fmt.Fprintf(cfg.Stderr, "eddy admin: %v\n", err)
	return exitFail
}

// command is one parsed `eddy admin` command line.
type command struct {
	words    []string // positional arguments, the command words included
	dataDir  string
	postgres string
	// user
	namespace, auth string
	all, showKey    bool
	// limits: -1 = not given
	perMinute, concurrent, concurrentAlias int
	firesPerMinute                         int
}

// parse reads flags wherever they are among the arguments (wskadmin puts
// them after the subject).
func parse(args []string, cfg Config) (*command, error) {
	c := &command{dataDir: cfg.DefaultDataDir}
	if cfg.Getenv != nil {
		c.postgres = cfg.Getenv("EDDY_POSTGRES")
	}
	fs := flag.NewFlagSet("eddy admin", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.dataDir, "data-dir", c.dataDir, "")
	fs.StringVar(&c.postgres, "postgres", c.postgres, "")
	fs.StringVar(&c.namespace, "namespace", "", "")
	fs.StringVar(&c.namespace, "ns", "", "")
	fs.StringVar(&c.auth, "auth", "", "")
	fs.StringVar(&c.auth, "u", "", "")
	fs.BoolVar(&c.all, "all", false, "")
	fs.BoolVar(&c.all, "a", false, "")
	fs.BoolVar(&c.showKey, "key", false, "")
	fs.BoolVar(&c.showKey, "k", false, "")
	fs.IntVar(&c.perMinute, "invocationsPerMinute", -1, "")
	fs.IntVar(&c.concurrent, "concurrentInvocations", -1, "")
	fs.IntVar(&c.firesPerMinute, "firesPerMinute", -1, "")
	fs.IntVar(&c.concurrentAlias, "concurrentContainers", -1, "")
	unsupported := map[string]bool{}
	for _, name := range []string{"allowedKinds", "storeActivations"} {
		fs.Func(name, "", func(string) error { unsupported[name] = true; return nil })
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		c.words = append(c.words, fs.Arg(0))
		args = fs.Args()[1:]
	}
	for name := range unsupported {
		return nil, usagef("--%s is a wskadmin limit that Eddy does not have (no kinds or activation storage settings)", name)
	}
	return c, nil
}

func run(ctx context.Context, args []string, cfg Config) error {
	c, err := parse(args, cfg)
	if err != nil {
		return err
	}
	if len(c.words) < 2 {
		if len(c.words) == 1 && c.words[0] == "help" {
			return flag.ErrHelp
		}
		return usagef("want a command: user create|get|delete|list|whois|block|unblock or limits set|get|delete")
	}
	var do func(context.Context, Store, *command, io.Writer) error
	minArgs, maxArgs := 1, 1 // positional arguments after the two command words
	switch c.words[0] + " " + c.words[1] {
	case "user create":
		do = userCreate
	case "user get":
		do = userGet
	case "user delete":
		do = userDelete
	case "user list":
		do, minArgs = userList, 0
	case "user whois":
		do = userWhois
	case "user block", "user unblock":
		do, maxArgs = userBlock, 1<<20
	case "limits set":
		do = limitsSet
	case "limits get":
		do = limitsGet
	case "limits delete":
		do = limitsDelete
	default:
		return usagef("unknown command %q", c.words[0]+" "+c.words[1])
	}
	if n := len(c.words) - 2; n < minArgs || n > maxArgs {
		return usagef("%s %s: want %d argument(s), got %d", c.words[0], c.words[1], maxArgs, n)
	}
	if c.words[0] == "user" && (c.perMinute != -1 || c.concurrent != -1 || c.concurrentAlias != -1 || c.firesPerMinute != -1) {
		return usagef("limit flags belong to 'limits set'")
	}
	st, err := cfg.Open(ctx, c.dataDir, c.postgres)
	if err != nil {
		return err
	}
	defer st.Close()
	return do(ctx, st, c, cfg.Stdout)
}

// ---- users ----

// validNamespace checks a namespace name given on the command line.
func validNamespace(ns string) error {
	if ns == whisk.DefaultNamespace || !whisk.ValidName(ns) || strings.Contains(ns, "/") {
		return usagef("invalid namespace %q", ns)
	}
	return nil
}

// subjectKeys returns the identities of a subject.
func subjectKeys(ctx context.Context, st Store, subject string) ([]whisk.Identity, error) {
	all, err := st.ListIdentities(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []whisk.Identity
	for _, id := range all {
		if id.Subject == subject {
			out = append(out, id)
		}
	}
	return out, nil
}

// knownSubjectKeys is subjectKeys for a subject that must exist.
func knownSubjectKeys(ctx context.Context, st Store, subject string) ([]whisk.Identity, error) {
	keys, err := subjectKeys(ctx, st, subject)
	if err == nil && len(keys) == 0 {
		err = fmt.Errorf("subject %q not found", subject)
	}
	return keys, err
}

func userCreate(ctx context.Context, st Store, c *command, out io.Writer) error {
	subject := c.words[2]
	if len(subject) < MinSubjectLength {
		return usagef("subject name must be at least %d characters", MinSubjectLength)
	}
	if !whisk.ValidName(subject) {
		return usagef("invalid subject %q", subject)
	}
	ns := c.namespace
	if ns == "" {
		ns = subject
	}
	if err := validNamespace(ns); err != nil {
		return err
	}
	uuid, key := whisk.NewAuthKey()
	if c.auth != "" {
		var err error
		if uuid, key, err = whisk.ParseAuthKey(c.auth); err != nil {
			return usageError{whisk.UserMessage(err)}
		}
	}
	// The checks run in the store's transaction: two creates of one
	// subject (two admins at once) are serialized, so they cannot both
	// pass, and a failed one writes nothing.
	id := whisk.Identity{Subject: subject, Namespace: ns, UUID: uuid, Key: key}
	err := st.CreateIdentity(ctx, id, func(keys []whisk.Identity, holder *whisk.Identity) error {
		for _, k := range keys {
			if k.Blocked {
				return errors.New("the subject you want to edit is blocked")
			}
		}
		if len(keys) > 0 && c.namespace == "" {
			return errors.New("the subject you want to create already exists (give --namespace to add a namespace to it)")
		}
		for _, k := range keys {
			if k.Namespace == ns {
				return fmt.Errorf("namespace %q already exists for subject %q", ns, subject)
			}
		}
		if holder != nil {
			return fmt.Errorf("the key's UUID is already used by subject %q in namespace %q", holder.Subject, holder.Namespace)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, id.AuthKey())
	return nil
}

func userGet(ctx context.Context, st Store, c *command, out io.Writer) error {
	subject := c.words[2]
	keys, err := knownSubjectKeys(ctx, st, subject)
	if err != nil {
		return err
	}
	if c.all {
		for _, id := range keys {
			fmt.Fprintf(out, "%s\t%s\n", id.Namespace, id.UUID)
		}
		return nil
	}
	ns := c.namespace
	if ns == "" {
		if len(keys) == 1 {
			ns = keys[0].Namespace
		} else {
			ns = subject
		}
	}
	for _, id := range keys {
		if id.Namespace == ns {
			fmt.Fprintln(out, id.UUID)
			return nil
		}
	}
	return fmt.Errorf("namespace %q not found for subject %q (--all lists its namespaces)", ns, subject)
}

func userDelete(ctx context.Context, st Store, c *command, out io.Writer) error {
	subject := c.words[2]
	keys, err := knownSubjectKeys(ctx, st, subject)
	if err != nil {
		return err
	}
	n := 0
	for _, id := range keys {
		if c.namespace != "" && id.Namespace != c.namespace {
			continue
		}
		if err := st.DeleteIdentity(ctx, id.UUID); err != nil && !whisk.IsKind(err, whisk.NotFound) {
			return err
		}
		n++
	}
	switch {
	case c.namespace == "":
		fmt.Fprintln(out, "Subject deleted")
	case n == 0:
		return fmt.Errorf("namespace %q not found for subject %q", c.namespace, subject)
	default:
		fmt.Fprintln(out, "Namespace deleted")
	}
	return nil
}

// errFailed is the error of a command that printed its failures itself.
var errFailed = errors.New("failed")

// userBlock blocks (user block) or unblocks every subject given, printing
// wskadmin's line for each; it fails if any subject failed.
func userBlock(ctx context.Context, st Store, c *command, out io.Writer) error {
	verb := c.words[1] // "block" or "unblock"
	block := verb == "block"
	failed := 0
	for _, subject := range c.words[2:] {
		subject = strings.TrimSpace(subject)
		if subject == "" {
			continue
		}
		n, err := st.SetSubjectBlocked(ctx, subject, block)
		switch {
		case err != nil:
			fmt.Fprintf(out, "Failed to %s %q (%v)\n", verb, subject, err)
			failed++
		case n == 0:
			fmt.Fprintf(out, "Failed to %s %q (not found)\n", verb, subject)
			failed++
		default:
			fmt.Fprintf(out, "%q %sed successfully\n", subject, verb)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d subjects not %sed: %w", failed, len(c.words)-2, verb, errFailed)
	}
	return nil
}

// userWhois prints who a key belongs to, in wskadmin's form; a key that
// matches no identity (or whose secret is wrong: only its hash is stored)
// is "not recognized", with exit code 0 as wskadmin answers.
func userWhois(ctx context.Context, st Store, c *command, out io.Writer) error {
	uuid, key, ok := strings.Cut(c.words[2], ":")
	if !ok || uuid == "" || key == "" {
		return usagef("user whois: want the key as UUID:KEY")
	}
	id, err := st.IdentityByUUID(ctx, uuid)
	switch {
	case whisk.IsKind(err, whisk.NotFound) || err == nil && !id.Authenticate(key):
		fmt.Fprintln(out, "Subject id is not recognized")
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(out, "subject: %s\nnamespace: %s\n", id.Subject, id.Namespace)
	return nil
}

func userList(ctx context.Context, st Store, c *command, out io.Writer) error {
	ns := ""
	if len(c.words) > 2 {
		ns = c.words[2]
	}
	ids, err := st.ListIdentities(ctx, ns)
	if err != nil {
		return err
	}
	for _, id := range ids {
		var fields []string
		if c.showKey {
			fields = append(fields, id.UUID) // the key is stored hashed
		}
		fields = append(fields, id.Subject)
		if ns == "" {
			fields = append(fields, id.Namespace)
		}
		fmt.Fprintln(out, strings.Join(fields, "\t"))
	}
	return nil
}

// ---- limits ----

func limitsSet(ctx context.Context, st Store, c *command, out io.Writer) error {
	ns := c.words[2]
	if err := validNamespace(ns); err != nil {
		return err
	}
	if c.concurrent != -1 && c.concurrentAlias != -1 && c.concurrent != c.concurrentAlias {
		return usagef("--concurrentInvocations and --concurrentContainers are the same limit")
	}
	conc := max(c.concurrent, c.concurrentAlias)
	if c.perMinute == -1 && conc == -1 && c.firesPerMinute == -1 {
		return usagef("limits set: give --invocationsPerMinute, --concurrentInvocations and/or --firesPerMinute")
	}
	for name, v := range map[string]int{"invocationsPerMinute": c.perMinute, "concurrentInvocations": conc, "firesPerMinute": c.firesPerMinute} {
		if v == 0 || v < -1 {
			return usagef("--%s %d: want a positive number ('limits delete' returns a namespace to the defaults)", name, v)
		}
	}
	// Like wskadmin, set merges into the limits already set.
	l, err := st.GetNamespaceLimits(ctx, ns)
	if err != nil && !whisk.IsKind(err, whisk.NotFound) {
		return err
	}
	if c.perMinute > 0 {
		l.InvocationsPerMinute = c.perMinute
	}
	if conc > 0 {
		l.ConcurrentContainers = conc
	}
	if c.firesPerMinute > 0 {
		l.FiresPerMinute = c.firesPerMinute
	}
	if err := st.PutNamespaceLimits(ctx, ns, l); err != nil {
		return err
	}
	fmt.Fprintf(out, "Limits successfully set for %q\n", ns)
	return nil
}

func limitsGet(ctx context.Context, st Store, c *command, out io.Writer) error {
	l, err := st.GetNamespaceLimits(ctx, c.words[2])
	if whisk.IsKind(err, whisk.NotFound) {
		fmt.Fprintln(out, "No limits found, default system limits apply")
		return nil
	}
	if err != nil {
		return err
	}
	if l.InvocationsPerMinute > 0 {
		fmt.Fprintln(out, "invocationsPerMinute = "+strconv.Itoa(l.InvocationsPerMinute))
	}
	if l.ConcurrentContainers > 0 {
		fmt.Fprintln(out, "concurrentInvocations = "+strconv.Itoa(l.ConcurrentContainers))
	}
	if l.FiresPerMinute > 0 {
		fmt.Fprintln(out, "firesPerMinute = "+strconv.Itoa(l.FiresPerMinute))
	}
	return nil
}

func limitsDelete(ctx context.Context, st Store, c *command, out io.Writer) error {
	err := st.DeleteNamespaceLimits(ctx, c.words[2])
	if whisk.IsKind(err, whisk.NotFound) {
		return fmt.Errorf("no limits set for namespace %q", c.words[2])
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "Limits deleted")
	return nil
}
