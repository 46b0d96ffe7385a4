package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"

	"github.com/eddy-faas/eddy/internal/client"
)

// wsk's status names for the activation list, by statusCode.
var listStatus = []string{"success", "application error", "developer error", "internal error"}

func (r *runner) activationList(args []string) error {
	const cmd = "activation list"
	fs := r.newFlags(cmd)
	var limit, skip int
	var since, upto int64
	var full bool
	for _, n := range []string{"limit", "l"} {
		fs.IntVar(&limit, n, defaultListMax, "")
	}
	for _, n := range []string{"skip", "s"} {
		fs.IntVar(&skip, n, 0, "")
	}
	fs.Int64Var(&since, "since", 0, "")
	fs.Int64Var(&upto, "upto", 0, "")
	fs.BoolVar(&full, "full", false, "")
	fs.BoolVar(&full, "f", false, "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 0, 1, "An optional namespace is the only valid argument."); err != nil {
		return err
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	opt := client.ActivationListOptions{Limit: limit, Skip: skip, Since: since, Upto: upto, Docs: full}
	if len(pos) == 1 {
		_, opt.Name = client.SplitName(pos[0], cfg.namespace)
	}
	acts, err := cl.ListActivations(r.ctx, opt)
	if err != nil {
		return fmt.Errorf("Unable to obtain the list of activations for namespace 'default': %w", err)
	}
	if full {
		fmt.Fprintln(r.out, "activations")
		for _, a := range acts {
			printJSON(r.out, a)
		}
		return nil
	}
	printActivationTable(r.out, acts)
	return nil
}

// printActivationTable is wsk's activation list table.
func printActivationTable(w io.Writer, acts []client.Activation) {
	kindOf := func(a client.Activation) string {
		var k string
		if v, ok := a.Annotations.Get("kind"); ok {
			_ = json.Unmarshal(v, &k)
		}
		if k == "" {
			k = "unknown"
		}
		return k
	}
	kindW, statusW := len("Kind"), len(listStatus[0])
	for _, a := range acts {
		kindW = max(kindW, len(kindOf(a)))
		if a.StatusCode > 0 && a.StatusCode < len(listStatus) {
			statusW = max(statusW, len(listStatus[a.StatusCode]))
		}
	}
	kw, sw := strconv.Itoa(kindW), strconv.Itoa(statusW)
	fmt.Fprintf(w, "%-19s %-32s %-"+kw+"s %-6s%-10s %-"+sw+"s %-6s\n",
		"Datetime", "Activation ID", "Kind", "Start", "Duration", "Status", "Entity")
	for _, a := range acts {
		s := time.UnixMilli(a.Start)
		d := time.Duration(a.End-a.Start) * time.Millisecond
		if a.Duration == 0 {
			d = 0
		}
		status := listStatus[0]
		if a.StatusCode > 0 && a.StatusCode < len(listStatus) {
			status = listStatus[a.StatusCode]
		}
		start := "warm"
		if _, ok := a.Annotations.Get("initTime"); ok {
			start = "cold"
		}
		entity := truncate(a.Namespace, 20) + "/" + truncate(a.Name, 30) + ":" + truncate(a.Version, 20)
		fmt.Fprintf(w, "%d-%02d-%02d %02d:%02d:%02d %-32s %-"+kw+"s %-5s %-10v %-"+sw+"s %s\n",
			s.Year(), s.Month(), s.Day(), s.Hour(), s.Minute(), s.Second(),
			a.ActivationID, kindOf(a), start, d, status, entity)
	}
}

// truncate shortens s to n characters with "..." in the middle, as wsk does.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	mid := n / 2
	upp := len(s) - mid + 3
	if n%2 != 0 {
		mid++
	}
	return s[:mid] + "..." + s[upp:]
}

// activationID returns the id argument, or with --last the newest
// activation's id (GET activations?limit=1&skip=0).
func (r *runner) activationID(cmd string, cl *client.Client, pos []string, last bool, maxArgs int) ([]string, error) {
	if last {
		acts, err := cl.ListActivations(r.ctx, client.ActivationListOptions{Limit: 1})
		if err != nil {
			return nil, fmt.Errorf("Unable to get the last activation: %w", err)
		}
		if len(acts) == 0 {
			return nil, generalErr("Activation list does not contain any activations.")
		}
		pos = append([]string{string(acts[0].ActivationID)}, pos...)
	}
	if err := checkArgs(cmd, pos, 1, maxArgs, "An activation ID is required."); err != nil {
		return nil, err
	}
	return pos, nil
}

func (r *runner) activationGet(args []string) error {
	const cmd = "activation get"
	fs := r.newFlags(cmd)
	var summary, last bool
	fs.BoolVar(&summary, "summary", false, "")
	fs.BoolVar(&summary, "s", false, "")
	fs.BoolVar(&last, "last", false, "")
	fs.BoolVar(&last, "l", false, "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	cl, _, err := r.client(true)
	if err != nil {
		return err
	}
	if pos, err = r.activationID(cmd, cl, pos, last, 2); err != nil {
		return err
	}
	id := pos[0]
	a, err := cl.GetActivation(r.ctx, id)
	if err != nil {
		return fmt.Errorf("Unable to get activation '%s': %w", id, err)
	}
	switch {
	case summary:
		fmt.Fprintf(r.out, "activation result for '/%s/%s' (%s at %s)\n",
			a.Namespace, a.Name, a.Response.Status, time.Unix(a.End/1000, 0))
		printJSON(r.out, a.Response.Result)
	case len(pos) == 2:
		return printField(r.out, cmd, "activation", id, a, pos[1])
	default:
		fmt.Fprintf(r.out, "ok: got activation %s\n", id)
		printJSON(r.out, a)
	}
	return nil
}

// logPrefix is a log line's timestamp and stream, which --strip removes.
var logPrefix = regexp.MustCompile(`\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-6]\d:[0-6]\d.\d+Z( *(stdout|stderr):)?\s(.*)`)

func stripLog(line string) string {
	if m := logPrefix.FindStringSubmatch(line); len(m) > 3 && m[3] != "" {
		return m[3]
	}
	return line
}

func (r *runner) activationLogs(args []string) error {
	const cmd = "activation logs"
	fs := r.newFlags(cmd)
	var strip, last bool
	fs.BoolVar(&strip, "strip", false, "")
	fs.BoolVar(&strip, "r", false, "")
	fs.BoolVar(&last, "last", false, "")
	fs.BoolVar(&last, "l", false, "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	cl, _, err := r.client(true)
	if err != nil {
		return err
	}
	if pos, err = r.activationID(cmd, cl, pos, last, 1); err != nil {
		return err
	}
	id := pos[0]
	logs, err := cl.ActivationLogs(r.ctx, id)
	if err != nil {
		return fmt.Errorf("Unable to get logs for activation '%s': %w", id, err)
	}
	for _, l := range logs {
		if strip {
			l = stripLog(l)
		}
		fmt.Fprintln(r.out, l)
	}
	return nil
}

func (r *runner) activationResult(args []string) error {
	const cmd = "activation result"
	fs := r.newFlags(cmd)
	var last bool
	fs.BoolVar(&last, "last", false, "")
	fs.BoolVar(&last, "l", false, "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	cl, _, err := r.client(true)
	if err != nil {
		return err
	}
	if pos, err = r.activationID(cmd, cl, pos, last, 1); err != nil {
		return err
	}
	id := pos[0]
	res, err := cl.ActivationResult(r.ctx, id)
	if err != nil {
		return fmt.Errorf("Unable to get result for activation '%s': %w", id, err)
	}
	printJSON(r.out, res.Result)
	return nil
}

func (r *runner) namespaceList(args []string) error {
	const cmd = "namespace list"
	fs := r.newFlags(cmd)
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 0, 0, "No arguments are required."); err != nil {
		return err
	}
	cl, _, err := r.client(true)
	if err != nil {
		return err
	}
	nss, err := cl.ListNamespaces(r.ctx)
	if err != nil {
		return fmt.Errorf("Unable to obtain the list of available namespaces: %w", err)
	}
	fmt.Fprintln(r.out, "namespaces")
	for _, n := range nss {
		fmt.Fprintln(r.out, n)
	}
	return nil
}
