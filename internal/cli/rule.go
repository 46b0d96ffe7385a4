package cli

import (
	"flag"
	"fmt"
	"sort"
	"strings"

	"github.com/eddy-faas/eddy/internal/client"
	"github.com/eddy-faas/eddy/internal/whisk"
)

const usageRule = `Usage: eddy rule COMMAND [ARGS] [FLAGS]

Commands:
  create   create a new rule
  update   update an existing rule, or create it if it does not exist
  enable   enable a rule
  disable  disable a rule
  status   get a rule's status
  get      get a rule
  list     list rules
  delete   delete a rule

Run 'eddy rule COMMAND --help' for a command's flags.
` + globalFlagsHelp

// ruleUsage are the rule commands' help texts.
var ruleUsage = map[string]string{
	"rule create":  "Usage: eddy rule create NAME TRIGGER ACTION\n" + globalFlagsHelp,
	"rule update":  "Usage: eddy rule update NAME TRIGGER ACTION\n" + globalFlagsHelp,
	"rule enable":  "Usage: eddy rule enable NAME\n" + globalFlagsHelp,
	"rule disable": "Usage: eddy rule disable NAME\n" + globalFlagsHelp,
	"rule status":  "Usage: eddy rule status NAME\n" + globalFlagsHelp,
	"rule get": `Usage: eddy rule get NAME [FIELD] [FLAGS]

Flags:
  -s, --summary              summarize the rule
` + globalFlagsHelp,
	"rule list": `Usage: eddy rule list [NAMESPACE] [FLAGS]

Flags:
  -l, --limit N              list at most N rules (default 30)
  -s, --skip N               skip the first N rules
  -n, --name-sort            sort by name
` + globalFlagsHelp,
	"rule delete": `Usage: eddy rule delete NAME [FLAGS]

Flags:
      --disable              disable the rule before deleting it
` + globalFlagsHelp,
}

// ruleCommands are the subcommands of `eddy rule`.
func ruleCommands() map[string]leaf {
	return map[string]leaf{
		"create":  func(r *runner, a []string) error { return r.rulePut(a, false) },
		"update":  func(r *runner, a []string) error { return r.rulePut(a, true) },
		"enable":  func(r *runner, a []string) error { return r.ruleSetStatus(a, whisk.RuleActive) },
		"disable": func(r *runner, a []string) error { return r.ruleSetStatus(a, whisk.RuleInactive) },
		"status":  (*runner).ruleStatus, "get": (*runner).ruleGet,
		"list": (*runner).ruleList, "delete": (*runner).ruleDelete,
	}
}

// qualifiedPath is wsk's getQualifiedName: a name with a leading slash as
// is, else "/ns/name" in the configured namespace ("_" by default).
func qualifiedPath(name, ns string) string {
	if strings.HasPrefix(name, "/") {
		return name
	}
	return "/" + ns + "/" + name
}

func (r *runner) rulePut(args []string, update bool) error {
	cmd, verb, past := "rule create", "create", "created"
	if update {
		cmd, verb, past = "rule update", "update", "updated"
	}
	fs := r.newFlags(cmd)
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 3, 3, "A rule, trigger and action name are required."); err != nil {
		return err
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	_, entity := client.SplitName(pos[0], cfg.namespace)
	put := &client.RulePut{
		Name:    entity,
		Trigger: qualifiedPath(pos[1], cfg.namespace),
		Action:  qualifiedPath(pos[2], cfg.namespace),
	}
	if _, err := cl.PutRule(r.ctx, pos[0], put, update); err != nil {
		return fmt.Errorf("Unable to %s rule '%s': %w", verb, entity, err)
	}
	fmt.Fprintf(r.out, "ok: %s rule %s\n", past, entity)
	return nil
}

// oneRule parses a command that takes exactly one rule name.
func (r *runner) oneRule(cmd string, args []string, flags func(*flag.FlagSet)) (*client.Client, string, string, error) {
	fs := r.newFlags(cmd)
	if flags != nil {
		flags(fs)
	}
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return nil, "", "", err
	}
	if err := checkArgs(cmd, pos, 1, 1, "A rule name is required."); err != nil {
		return nil, "", "", err
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return nil, "", "", err
	}
	_, entity := client.SplitName(pos[0], cfg.namespace)
	return cl, pos[0], entity, nil
}

func (r *runner) ruleSetStatus(args []string, status string) error {
	cmd, verb, past := "rule enable", "enable", "enabled"
	if status == whisk.RuleInactive {
		cmd, verb, past = "rule disable", "disable", "disabled"
	}
	cl, name, entity, err := r.oneRule(cmd, args, nil)
	if err != nil {
		return err
	}
	if err := cl.SetRuleStatus(r.ctx, name, status); err != nil {
		return fmt.Errorf("Unable to %s rule '%s': %w", verb, entity, err)
	}
	fmt.Fprintf(r.out, "ok: %s rule %s\n", past, entity)
	return nil
}

func (r *runner) ruleStatus(args []string) error {
	cl, name, entity, err := r.oneRule("rule status", args, nil)
	if err != nil {
		return err
	}
	rule, err := cl.GetRule(r.ctx, name)
	if err != nil {
		return fmt.Errorf("Unable to get status of rule '%s': %w", entity, err)
	}
	fmt.Fprintf(r.out, "ok: rule %s is %s\n", entity, rule.Status)
	return nil
}

func (r *runner) ruleGet(args []string) error {
	g, err := r.parseGet("rule", args)
	if err != nil {
		return err
	}
	rule, err := g.cl.GetRule(r.ctx, g.name)
	if err != nil {
		return fmt.Errorf("Unable to get rule '%s': %w", g.entity, err)
	}
	return r.show(g, rule, func() {
		fmt.Fprintf(r.out, "rule /%s/%s\n   (status: %s)\n", rule.Namespace, rule.Name, rule.Status)
	})
}

func (r *runner) ruleDelete(args []string) error {
	var disable bool
	cl, name, entity, err := r.oneRule("rule delete", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&disable, "disable", false, "")
	})
	if err != nil {
		return err
	}
	if disable {
		if err := cl.SetRuleStatus(r.ctx, name, whisk.RuleInactive); err != nil {
			return fmt.Errorf("Unable to disable rule '%s': %w", entity, err)
		}
	}
	if err := cl.DeleteRule(r.ctx, name); err != nil {
		return fmt.Errorf("Unable to delete rule '%s': %w", entity, err)
	}
	fmt.Fprintf(r.out, "ok: deleted rule %s\n", entity)
	return nil
}

// ruleList is wsk's rule list: the list, then one GET per rule for its
// status (the list carries none).
func (r *runner) ruleList(args []string) error {
	const cmd = "rule list"
	l, err := r.parseList(cmd, args)
	if err != nil {
		return err
	}
	ns := strings.Trim(l.arg, "/")
	rules, err := l.cl.ListRules(r.ctx, ns, client.ListOptions{Limit: l.limit, Skip: l.skip})
	if err != nil {
		return fmt.Errorf("Unable to obtain the list of rules for namespace '%s': %w", listNamespaceName(ns, l.cfg.namespace), err)
	}
	for i, rule := range rules {
		got, err := l.cl.GetRule(r.ctx, rule.Name)
		if err != nil {
			return fmt.Errorf("Unable to get status of rule '%s': %w", rule.Name, err)
		}
		rules[i].Status = got.Status
	}
	if l.nameSort {
		sort.SliceStable(rules, func(i, j int) bool { return rules[i].Name < rules[j].Name })
	}
	fmt.Fprintln(r.out, "rules")
	for _, rule := range rules {
		fmt.Fprintf(r.out, "%-70s %-20s %s\n", "/"+rule.Namespace+"/"+rule.Name, "private", rule.Status)
	}
	return nil
}
