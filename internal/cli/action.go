package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/eddy-faas/eddy/internal/client"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Annotation keys the CLI manages.
const (
	annWebExport   = "web-export"
	annRawHTTP     = "raw-http"
	annFinal       = "final"
	annWebSecure   = "require-whisk-auth"
	annExec        = "exec"
	kindBlackbox   = "blackbox"
	kindSequence   = "sequence"
	kindNative     = "native:default" // Eddy's native kind, family "native"
	skeletonImage  = "openwhisk/dockerskeleton"
	msgNeedsCode   = "An action name and code artifact are required."
	defaultListMax = 30
)

// strList is a repeatable string flag.
type strList []string

func (s *strList) String() string     { return strings.Join(*s, ",") }
func (s *strList) Set(v string) error { *s = append(*s, v); return nil }

// actionPut is `action create` and `action update`.
func (r *runner) actionPut(args []string, update bool) error {
	cmd := "action create"
	if update {
		cmd = "action update"
	}
	args, kv, err := extractKeyValues(cmd, args, true)
	if err != nil {
		return err
	}
	fs := r.newFlags(cmd)
	var kind, mainFn, docker, web, webSecure string
	var native, sequence bool
	var memory, timeout, logsize int64
	var concurrency int
	var delAnnots strList
	fs.StringVar(&kind, "kind", "", "")
	fs.StringVar(&mainFn, "main", "", "")
	fs.StringVar(&docker, "docker", "", "")
	fs.StringVar(&web, "web", "", "")
	fs.StringVar(&webSecure, "web-secure", "", "")
	fs.BoolVar(&native, "native", false, "")
	fs.BoolVar(&sequence, "sequence", false, "")
	for _, n := range []string{"memory", "m"} {
		fs.Int64Var(&memory, n, 256, "")
	}
	for _, n := range []string{"timeout", "t"} {
		fs.Int64Var(&timeout, n, 60000, "")
	}
	for _, n := range []string{"logsize", "l"} {
		fs.Int64Var(&logsize, n, 10, "")
	}
	for _, n := range []string{"concurrency", "c"} {
		fs.IntVar(&concurrency, n, 1, "")
	}
	if update {
		fs.Var(&delAnnots, "del-annotation", "")
	}
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	required := msgNeedsCode
	if update {
		required = "An action name is required. A code artifact is optional."
	}
	if err := checkArgs(cmd, pos, 1, 2, required); err != nil {
		return err
	}
	set := setFlags(fs)
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	name := pos[0]
	ns, entity := client.SplitName(name, cfg.namespace)
	put := &client.ActionPut{Namespace: ns, Name: entity}

	if set["memory"] || set["m"] || set["timeout"] || set["t"] || set["logsize"] || set["l"] || set["concurrency"] || set["c"] {
		l := &client.LimitsPut{}
		if set["timeout"] || set["t"] {
			l.Timeout = &timeout
		}
		if set["memory"] || set["m"] {
			l.Memory = &memory
		}
		if set["logsize"] || set["l"] {
			l.Logs = &logsize
		}
		if set["concurrency"] || set["c"] {
			l.Concurrency = &concurrency
		}
		put.Limits = l
	}
	if kv.hasParams {
		put.Parameters = kv.params
	}
	if kv.hasAnnots {
		put.Annotations = kv.annots
	}
	if kind != "" && docker != "" {
		return usageErr(cmd, "Cannot specify both --kind and --docker at the same time.")
	}
	switch {
	case sequence:
		if len(pos) != 2 {
			return usageErr(cmd, "Invalid argument(s). %s", msgNeedsCode)
		}
		var comps []string
		for _, c := range strings.Split(pos[1], ",") {
			comps = append(comps, qualify(strings.TrimSpace(c), cfg.namespace))
		}
		put.Exec = &client.ExecPut{Kind: kindSequence, Components: comps}
	case len(pos) > 1 || docker != "":
		exec, err := buildExec(cmd, pos, kind, docker, mainFn, native)
		if err != nil {
			return err
		}
		put.Exec = exec
	case !update:
		return usageErr(cmd, "Invalid argument(s). %s", msgNeedsCode)
	}
	if update && len(delAnnots) > 0 {
		put.DelAnnotations = delAnnots
	}

	var existing *whisk.Action
	if update || set["web-secure"] {
		existing, err = cl.GetAction(r.ctx, name, false)
		if err != nil {
			if client.StatusOf(err) != http.StatusNotFound {
				return fmt.Errorf("Unable to get action '%s': %w", entity, err)
			}
			existing = nil
		}
	}
	if set["web"] {
		annots, err := webAnnotations(cmd, web, put.Annotations, !kv.hasAnnots, existing)
		if err != nil {
			return err
		}
		put.Annotations = annots
	}
	if set["web-secure"] {
		if err := webSecureAnnotations(cmd, webSecure, web, put, existing); err != nil {
			return err
		}
	}

	if _, err := cl.PutAction(r.ctx, name, put, update); err != nil {
		return fmt.Errorf("Unable to create action '%s': %w", entity, err)
	}
	if update {
		fmt.Fprintf(r.out, "ok: updated action %s\n", entity)
	} else {
		fmt.Fprintf(r.out, "ok: created action %s\n", entity)
	}
	return nil
}

// qualify gives a name its namespace ("/ns/name"), as wsk does for
// sequence components.
func qualify(name, ns string) string {
	if strings.HasPrefix(name, "/") {
		return name
	}
	return "/" + ns + "/" + name
}

// buildExec is wsk's getExec plus Eddy's native kind: the code from the
// file (base64 when binary), the kind from --kind, --docker/--native or the
// file's extension; an ELF executable or a file without extension is native.
func buildExec(cmd string, pos []string, kind, docker, mainFn string, native bool) (*client.ExecPut, error) {
	exec := &client.ExecPut{}
	ext := ""
	isELF := false
	if len(pos) == 2 {
		artifact := pos[1]
		ext = strings.ToLower(filepath.Ext(artifact))
		data, err := readFile(artifact)
		if err != nil {
			return nil, usageErr(cmd, "%v", err)
		}
		isELF = bytes.HasPrefix(data, []byte("\x7fELF"))
		code := string(data)
		if ext == ".zip" || ext == ".jar" || ext == ".balx" || isELF || !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
			code = base64.StdEncoding.EncodeToString(data)
		}
		exec.Code = &code
	} else if docker == "" {
		return nil, usageErr(cmd, "Invalid argument(s). %s", msgNeedsCode)
	}
	switch {
	case kind != "":
		exec.Kind = kind
	case docker != "" || native:
		exec.Kind = kindBlackbox
		exec.Image = docker
		if native {
			exec.Image = skeletonImage
		}
	case isELF:
		exec.Kind = kindNative
	default:
		switch ext {
		case ".py":
			exec.Kind = "python:default"
		case ".js":
			exec.Kind = "nodejs:default"
		case ".swift":
			exec.Kind = "swift:default"
		case ".jar":
			exec.Kind = "java:default"
		case ".php":
			exec.Kind = "php:default"
		case ".rb":
			exec.Kind = "ruby:default"
		case ".rs":
			exec.Kind = "rust:default"
		case ".go":
			exec.Kind = "go:default"
		case ".balx":
			exec.Kind = "ballerina:default"
		case "":
			exec.Kind = kindNative
		case ".zip":
			return nil, usageErr(cmd, "creating an action from a .zip artifact requires specifying the action kind explicitly")
		default:
			return nil, usageErr(cmd, "'%s' is not a supported action runtime", ext)
		}
	}
	exec.Main = mainFn
	return exec, nil
}

// webAnnotations applies --web as wsk does: the web annotations replace any
// earlier ones; on update without -a/-A the existing annotations are carried
// along, and an existing require-whisk-auth always is.
func webAnnotations(cmd, mode string, given whisk.Params, preserve bool, existing *whisk.Action) (whisk.Params, error) {
	var export, raw, final bool
	switch strings.ToLower(mode) {
	case "true", "yes":
		export, raw, final = true, false, true
	case "false", "no":
		export, raw, final = false, false, false
	case "raw":
		export, raw, final = true, true, true
	default:
		return nil, usageErr(cmd, "Invalid argument '%s' for --web flag. Valid input consist of 'yes', 'true', 'raw', 'false', or 'no'.", mode)
	}
	annots := append(whisk.Params{}, given...)
	if preserve && existing != nil {
		annots = appendMissing(annots, existing.Annotations)
	}
	annots = annots.Without([]string{annWebExport, annRawHTTP, annFinal})
	annots = append(annots,
		whisk.KeyValue{Key: annWebExport, Value: jsonBool(export)},
		whisk.KeyValue{Key: annRawHTTP, Value: jsonBool(raw)},
		whisk.KeyValue{Key: annFinal, Value: jsonBool(final)})
	if existing != nil {
		if v, ok := existing.Annotations.Get(annWebSecure); ok {
			annots = appendMissing(annots, whisk.Params{{Key: annWebSecure, Value: v}})
		}
	}
	return annots, nil
}

// webSecureAnnotations applies --web-secure as wsk does: only for a web
// action (being made one, or already one and not being unmade); "true"
// sets a random number (an existing number is kept), "false" removes the
// annotation, anything else is the secret itself.
func webSecureAnnotations(cmd, secret, web string, put *client.ActionPut, existing *whisk.Action) error {
	disable := strings.EqualFold(web, "false") || strings.EqualFold(web, "no")
	valid := put.Annotations.IsTrue(annWebExport) ||
		(existing != nil && existing.Annotations.IsTrue(annWebExport) && !disable)
	if !valid {
		return usageErr(cmd, "The --web-secure option is only valid when the --web option is enabled.")
	}
	annots := append(whisk.Params{}, put.Annotations...)
	if existing != nil {
		for _, k := range []string{annWebExport, annRawHTTP, annFinal, annWebSecure} {
			if v, ok := existing.Annotations.Get(k); ok {
				annots = appendMissing(annots, whisk.Params{{Key: k, Value: v}})
			}
		}
	}
	old, hasOld := annots.Get(annWebSecure)
	annots = annots.Without([]string{annWebSecure})
	switch strings.ToLower(secret) {
	case "true":
		if hasOld && len(old) > 0 && old[0] >= '0' && old[0] <= '9' {
			annots = append(annots, whisk.KeyValue{Key: annWebSecure, Value: old})
			break
		}
		var b [8]byte
		_, _ = rand.Read(b[:])
		n := binary.BigEndian.Uint64(b[:]) >> 1
		annots = append(annots, whisk.KeyValue{Key: annWebSecure, Value: json.RawMessage(strconv.FormatUint(n, 10))})
	case "false":
		if hasOld {
			put.DelAnnotations = append(put.DelAnnotations, annWebSecure)
		} else {
			annots = append(annots, whisk.KeyValue{Key: annWebSecure, Value: json.RawMessage("false")})
		}
	default:
		v, _ := json.Marshal(secret)
		annots = append(annots, whisk.KeyValue{Key: annWebSecure, Value: v})
	}
	put.Annotations = annots
	return nil
}

// appendMissing appends the entries of q whose keys p lacks.
func appendMissing(p, q whisk.Params) whisk.Params {
	for _, kv := range q {
		if _, ok := p.Get(kv.Key); !ok {
			p = append(p, kv)
		}
	}
	return p
}

func jsonBool(b bool) json.RawMessage {
	if b {
		return json.RawMessage("true")
	}
	return json.RawMessage("false")
}

func (r *runner) actionGet(args []string) error {
	const cmd = "action get"
	fs := r.newFlags(cmd)
	var summary, wantURL bool
	fs.BoolVar(&summary, "summary", false, "")
	fs.BoolVar(&summary, "s", false, "")
	fs.BoolVar(&wantURL, "url", false, "")
	fs.BoolVar(&wantURL, "r", false, "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 1, 2, "An action name is required."); err != nil {
		return err
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	name := pos[0]
	_, entity := client.SplitName(name, cfg.namespace)
	a, err := cl.GetAction(r.ctx, name, false)
	if err != nil {
		return fmt.Errorf("Unable to get action '%s': %w", entity, err)
	}
	switch {
	case wantURL:
		fmt.Fprintf(r.out, "ok: got action %s\n%s\n", entity, actionURL(cl.BaseURL(), a))
	case summary:
		printActionSummary(r.out, a)
	case len(pos) == 2:
		return printField(r.out, cmd, "action", entity, a, pos[1])
	default:
		fmt.Fprintf(r.out, "ok: got action %s\n", entity)
		printJSON(r.out, a)
	}
	return nil
}

// actionURL is the action's URL: its web URL when web-exported, else its
// REST URL.
func actionURL(base string, a *whisk.Action) string {
	ns, pkg, inPkg := strings.Cut(a.Namespace, "/")
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	if a.Annotations.IsTrue(annWebExport) {
		if !inPkg {
			pkg = "default"
		}
		return fmt.Sprintf("%s/api/v1/web/%s/%s/%s", base, esc(ns), esc(pkg), esc(a.Name))
	}
	return fmt.Sprintf("%s/api/v1/namespaces/%s/actions/%s", base, esc(ns), esc(a.Name))
}

// printActionSummary is wsk's `action get --summary`.
func printActionSummary(w io.Writer, a *whisk.Action) {
	printEntitySummary(w, "action", "/"+a.Namespace+"/"+a.Name, a.Annotations, a.Parameters)
}

func (r *runner) actionList(args []string) error {
	const cmd = "action list"
	l, err := r.parseList(cmd, args)
	if err != nil {
		return err
	}
	// As wsk: "/ns" names a namespace; "pkg" or "/ns/pkg" a package.
	var ns, pkg string
	if strings.HasPrefix(l.arg, "/") && !strings.Contains(strings.Trim(l.arg, "/"), "/") {
		ns = strings.Trim(l.arg, "/")
	} else {
		pkg = strings.TrimSuffix(l.arg, "/")
	}
	opt := client.ListOptions{Limit: l.limit, Skip: l.skip}
	var actions []whisk.Action
	if pkg != "" {
		actions, err = l.cl.ListPackageActions(r.ctx, pkg, opt)
	} else {
		actions, err = l.cl.ListActions(r.ctx, ns, opt)
	}
	if err != nil {
		return fmt.Errorf("Unable to obtain the list of actions for namespace '%s': %w", listNamespaceName(ns, l.cfg.namespace), err)
	}
	printActions(r.out, actions, l.nameSort)
	return nil
}

// printActions is wsk's action list: name, publish state and kind.
func printActions(w io.Writer, actions []whisk.Action, nameSort bool) {
	if nameSort {
		sort.SliceStable(actions, func(i, j int) bool { return actions[i].Name < actions[j].Name })
	}
	fmt.Fprintln(w, "actions")
	for _, a := range actions {
		kind := ""
		if v, ok := a.Annotations.Get(annExec); ok {
			_ = json.Unmarshal(v, &kind)
		}
		fmt.Fprintf(w, "%-70s %s %s\n", "/"+a.Namespace+"/"+a.Name, publishState(a.Publish), kind)
	}
}

func (r *runner) actionDelete(args []string) error {
	const cmd = "action delete"
	fs := r.newFlags(cmd)
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 1, 1, "An action name is required."); err != nil {
		return err
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	_, entity := client.SplitName(pos[0], cfg.namespace)
	if err := cl.DeleteAction(r.ctx, pos[0]); err != nil {
		return fmt.Errorf("Unable to delete action '%s': %w", entity, err)
	}
	fmt.Fprintf(r.out, "ok: deleted action %s\n", entity)
	return nil
}

func (r *runner) actionInvoke(args []string) error {
	const cmd = "action invoke"
	args, kv, err := extractKeyValues(cmd, args, false)
	if err != nil {
		return err
	}
	fs := r.newFlags(cmd)
	var blocking, result bool
	var timeout int64
	fs.BoolVar(&blocking, "blocking", false, "")
	fs.BoolVar(&blocking, "b", false, "")
	fs.BoolVar(&result, "result", false, "")
	fs.BoolVar(&result, "r", false, "")
	fs.Int64Var(&timeout, "timeout", 0, "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 1, 1, "An action name is required."); err != nil {
		return err
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	name := pos[0]
	ns, entity := client.SplitName(name, cfg.namespace)
	blocking = blocking || result
	header := !result
	inv, err := cl.Invoke(r.ctx, name, paramsObject(kv.params), client.InvokeOptions{Blocking: blocking, Result: result, Timeout: timeout})
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) && ce.Application && blocking && inv != nil {
			if header {
				fmt.Fprintf(r.errw, "ok: invoked /%s/%s with id %s\n", ns, entity, inv.ActivationID)
			}
			printJSON(r.errw, inv.Body)
			return silentExit(ce.ExitCode())
		}
		return fmt.Errorf("Unable to invoke action '%s': %w", entity, err)
	}
	if blocking && !inv.Finished() {
		fmt.Fprintf(r.errw, "ok: invoked /%s/%s, but the request has not yet finished, with id %s\n", ns, entity, inv.ActivationID)
		return silentExit(client.ExitCodeForStatus(http.StatusAccepted))
	}
	if header {
		fmt.Fprintf(r.out, "ok: invoked /%s/%s with id %s\n", ns, entity, inv.ActivationID)
	}
	if blocking {
		printJSON(r.out, inv.Body)
	}
	return nil
}
