package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/eddy-faas/eddy/internal/client"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// The package commands and `eddy list` / `namespace get`, with wsk's
// flags, requests and output (docs/packages.md).

// parseShared is wsk's --shared yes|no.
func parseShared(cmd, v string) (*bool, error) {
	switch strings.ToLower(v) {
	case "":
		return nil, nil
	case "yes":
		t := true
		return &t, nil
	case "no":
		f := false
		return &f, nil
	}
	return nil, usageErr(cmd, "Cannot use value '%s' for shared.", v)
}

// packagePut is `package create` and `package update`.
func (r *runner) packagePut(args []string, update bool) error {
	cmd := "package create"
	if update {
		cmd = "package update"
	}
	args, kv, err := extractKeyValues(cmd, args, true)
	if err != nil {
		return err
	}
	fs := r.newFlags(cmd)
	var shared string
	fs.StringVar(&shared, "shared", "", "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 1, 1, "A package name is required."); err != nil {
		return err
	}
	publish, err := parseShared(cmd, shared)
	if err != nil {
		return err
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	ns, entity := client.SplitName(pos[0], cfg.namespace)
	put := &client.PackagePut{Namespace: ns, Name: entity, Publish: publish,
		Parameters: kv.params, Annotations: kv.annots}
	if _, err := cl.PutPackage(r.ctx, pos[0], put, update); err != nil {
		if update {
			return fmt.Errorf("Package update failed: %w", err)
		}
		return fmt.Errorf("Unable to create package '%s': %w", entity, err)
	}
	verb := "created"
	if update {
		verb = "updated"
	}
	fmt.Fprintf(r.out, "ok: %s package %s\n", verb, entity)
	return nil
}

// packageBind is `package bind PACKAGE BINDING`.
func (r *runner) packageBind(args []string) error {
	const cmd = "package bind"
	args, kv, err := extractKeyValues(cmd, args, true)
	if err != nil {
		return err
	}
	fs := r.newFlags(cmd)
	var overwrite bool
	fs.BoolVar(&overwrite, "overwrite", false, "")
	fs.BoolVar(&overwrite, "o", false, "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 2, 2, "A package name and binding name are required."); err != nil {
		return err
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	pns, pkg := client.SplitName(pos[0], cfg.namespace)
	put := &client.PackagePut{Binding: &whisk.Binding{Namespace: pns, Name: pkg},
		Parameters: kv.params, Annotations: kv.annots}
	if _, err := cl.PutPackage(r.ctx, pos[1], put, overwrite); err != nil {
		return fmt.Errorf("Binding creation failed: %w", err)
	}
	fmt.Fprintf(r.out, "ok: created binding %s\n", pos[1])
	return nil
}

// packageGet is `package get NAME [FIELD] [--summary]`.
func (r *runner) packageGet(args []string) error {
	g, err := r.parseGet("package", args)
	if err != nil {
		return err
	}
	p, err := g.cl.GetPackage(r.ctx, g.name)
	if err != nil {
		return fmt.Errorf("Unable to get package '%s': %w", g.entity, err)
	}
	return r.show(g, p, func() { printPackageSummary(r.out, p) })
}

// printPackageSummary is wsk's `package get --summary`: the package, then
// each action and feed, with their parameters (bound ones marked *,
// final ones **).
func printPackageSummary(w io.Writer, p *whisk.PackageWithActions) {
	full := "/" + p.Namespace + "/" + p.Name
	printEntitySummary(w, "package", full, p.Annotations, p.Parameters)
	for _, a := range p.Actions {
		printEntitySummary(w, " action", full+"/"+a.Name, a.Annotations, nil)
	}
	for _, f := range p.Feeds {
		printEntitySummary(w, " feed  ", full+"/"+f.Name, f.Annotations, nil)
	}
}

// printEntitySummary prints one entity of a --summary: its description
// (or one made of its parameters) and the union of its bound parameters
// and those its "parameters" annotation documents.
func printEntitySummary(w io.Writer, kind, fullName string, annots, params whisk.Params) {
	tag := "*"
	if annots.IsTrue(annFinal) {
		tag = "**"
	}
	bound := map[string]bool{}
	names := map[string]bool{}
	for _, p := range params {
		bound[p.Key] = true
		names[p.Key] = true
	}
	if v, ok := annots.Get("parameters"); ok {
		var ps []struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(v, &ps) == nil {
			for _, p := range ps {
				if p.Name != "" {
					names[p.Name] = true
				}
			}
		}
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)
	for i, n := range list {
		if bound[n] {
			list[i] = tag + n
		}
	}
	ps := strings.Join(list, ", ")
	var desc string
	if v, ok := annots.Get("description"); ok {
		_ = json.Unmarshal(v, &desc)
	}
	switch {
	case desc != "":
		fmt.Fprintf(w, "%s %s: %s\n", kind, fullName, desc)
	case ps != "":
		plain := strings.ReplaceAll(ps, "*", "")
		parts := strings.Split(plain, ", ")
		d := "Returns a result based on parameter " + plain
		if len(parts) > 1 {
			d = "Returns a result based on parameters " + strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
		}
		fmt.Fprintf(w, "%s %s: %s\n", kind, fullName, d)
	default:
		fmt.Fprintf(w, "%s %s\n", kind, fullName)
	}
	if ps == "" {
		ps = "none defined"
	}
	fmt.Fprintf(w, "   (parameters: %s)\n", ps)
}

// packageList is `package list [NAMESPACE]`.
func (r *runner) packageList(args []string) error {
	const cmd = "package list"
	l, err := r.parseList(cmd, args)
	if err != nil {
		return err
	}
	ns := strings.Trim(l.arg, "/")
	ps, err := l.cl.ListPackages(r.ctx, ns, client.ListOptions{Limit: l.limit, Skip: l.skip})
	if err != nil {
		return fmt.Errorf("Unable to obtain the list of packages for namespace '%s': %w", listNamespaceName(ns, l.cfg.namespace), err)
	}
	printPackages(r.out, ps, l.nameSort)
	return nil
}

func printPackages(w io.Writer, ps []client.PackageSummary, nameSort bool) {
	if nameSort {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	}
	fmt.Fprintln(w, "packages")
	for _, p := range ps {
		fmt.Fprintf(w, "%-70s %s\n", "/"+p.Namespace+"/"+p.Name, publishState(p.Publish))
	}
}

func publishState(shared bool) string {
	if shared {
		return "shared"
	}
	return "private"
}

// packageDelete is `package delete NAME`.
func (r *runner) packageDelete(args []string) error {
	const cmd = "package delete"
	fs := r.newFlags(cmd)
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 1, 1, "A package name is required."); err != nil {
		return err
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	_, entity := client.SplitName(pos[0], cfg.namespace)
	if err := cl.DeletePackage(r.ctx, pos[0]); err != nil {
		return fmt.Errorf("Unable to delete package '%s': %w", entity, err)
	}
	fmt.Fprintf(r.out, "ok: deleted package %s\n", entity)
	return nil
}

// namespaceGet is `namespace get` and `list`: every collection of the
// namespace, as wsk lists it (it reads each rule for its status).
func (r *runner) namespaceGet(cmd string, args []string) error {
	fs := r.newFlags(cmd)
	var nameSort bool
	fs.BoolVar(&nameSort, "name-sort", false, "")
	fs.BoolVar(&nameSort, "n", false, "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if !(len(pos) == 1 && pos[0] == "/_") {
		if err := checkArgs(cmd, pos, 0, 0, "No arguments are required."); err != nil {
			return err
		}
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	shown := listNamespaceName("", cfg.namespace)
	all := client.ListOptions{Limit: 0}
	listErr := func(err error) error {
		return fmt.Errorf("Unable to obtain the list of entities for namespace '%s': %w", shown, err)
	}
	actions, err := cl.ListActions(r.ctx, "", all)
	if err != nil {
		return listErr(err)
	}
	packages, err := cl.ListPackages(r.ctx, "", all)
	if err != nil {
		return listErr(err)
	}
	type summary struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		Publish   bool   `json:"publish"`
		Status    string `json:"status"`
	}
	var triggers, rules []summary
	if err := cl.ListCollection(r.ctx, "triggers", "", all, &triggers); err != nil {
		return listErr(err)
	}
	if err := cl.ListCollection(r.ctx, "rules", "", all, &rules); err != nil {
		return listErr(err)
	}
	for i := range rules {
		var got summary
		if err := cl.GetFromCollection(r.ctx, "rules", rules[i].Name, &got); err != nil {
			msg := fmt.Sprintf("Unable to get status of rule '%s': %v", rules[i].Name, err)
			fmt.Fprintln(r.out, msg)
			return fmt.Errorf("%s", msg)
		}
		rules[i].Status = got.Status
	}
	sorted := func(s []summary) {
		if nameSort {
			sort.SliceStable(s, func(i, j int) bool { return s[i].Name < s[j].Name })
		}
	}
	fmt.Fprintf(r.out, "Entities in namespace: %s\n", shown)
	printPackages(r.out, packages, nameSort)
	printActions(r.out, actions, nameSort)
	sorted(triggers)
	fmt.Fprintln(r.out, "triggers")
	for _, t := range triggers {
		fmt.Fprintf(r.out, "%-70s %s\n", "/"+t.Namespace+"/"+t.Name, "private")
	}
	sorted(rules)
	fmt.Fprintln(r.out, "rules")
	for _, ru := range rules {
		fmt.Fprintf(r.out, "%-70s %-20s %s\n", "/"+ru.Namespace+"/"+ru.Name, "private", ru.Status)
	}
	return nil
}
