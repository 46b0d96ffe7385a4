package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/eddy-faas/eddy/internal/client"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Feed lifecycle parameters, as wsk sends them to a feed action.
const (
	feedLifecycle = "lifecycleEvent"
	feedTrigger   = "triggerName"
	feedAuthKey   = "authKey"
	annFeed       = "feed"
)

// Feed lifecycle events the CLI sends.
const (
	feedCreate = "CREATE"
	feedRead   = "READ"
	feedUpdate = "UPDATE"
	feedDelete = "DELETE"
)

const usageTrigger = `Usage: eddy trigger COMMAND [ARGS] [FLAGS]

Commands:
  create   create a new trigger
  update   update an existing trigger, or create it if it does not exist
  fire     fire a trigger
  get      get a trigger
  list     list triggers
  delete   delete a trigger

Run 'eddy trigger COMMAND --help' for a command's flags.
` + globalFlagsHelp

const triggerPutFlags = `
Flags:
  -p, --param KEY VALUE          a parameter (to the feed action when the trigger has a feed)
  -P, --param-file FILE          parameters from a JSON object file
  -a, --annotation KEY VALUE     an annotation
  -A, --annotation-file FILE     annotations from a JSON object file
  -F, --feed-param KEY VALUE     a parameter of the feed action
  -T, --trigger-param KEY VALUE  a parameter of the trigger (with a feed)
`

// triggerUsage are the trigger commands' help texts.
var triggerUsage = map[string]string{
	"trigger create": "Usage: eddy trigger create NAME [FLAGS]\n" + triggerPutFlags +
		"  -f, --feed ACTION              the feed action (run with lifecycleEvent CREATE)\n" + globalFlagsHelp,
	"trigger update": "Usage: eddy trigger update NAME [FLAGS]\n" + triggerPutFlags + globalFlagsHelp,
	"trigger fire": `Usage: eddy trigger fire NAME [FLAGS]

Flags:
  -p, --param KEY VALUE      a payload parameter
  -P, --param-file FILE      payload parameters from a JSON object file
` + globalFlagsHelp,
	"trigger get": `Usage: eddy trigger get NAME [FIELD] [FLAGS]

Flags:
  -s, --summary              summarize the trigger
` + globalFlagsHelp,
	"trigger list": `Usage: eddy trigger list [NAMESPACE] [FLAGS]

Flags:
  -l, --limit N              list at most N triggers (default 30)
  -s, --skip N               skip the first N triggers
  -n, --name-sort            sort by name
` + globalFlagsHelp,
	"trigger delete": "Usage: eddy trigger delete NAME\n" + globalFlagsHelp,
}

// triggerCommands are the subcommands of `eddy trigger`.
func triggerCommands() map[string]leaf {
	return map[string]leaf{
		"create": func(r *runner, a []string) error { return r.triggerPut(a, false) },
		"update": func(r *runner, a []string) error { return r.triggerPut(a, true) },
		"fire":   (*runner).triggerFire, "get": (*runner).triggerGet,
		"list": (*runner).triggerList, "delete": (*runner).triggerDelete,
	}
}

// extractPairs takes the KEY VALUE pairs of the given flags (e.g. -F and
// --feed-param) out of args.
func extractPairs(cmd string, args []string, names ...string) ([]string, whisk.Params, error) {
	var rest []string
	var out whisk.Params
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(rest, args[i:]...), out, nil
		}
		match := false
		for _, n := range names {
			if a == n {
				match = true
			}
		}
		if !match {
			rest = append(rest, a)
			continue
		}
		if i+2 >= len(args) {
			return nil, nil, usageErr(cmd, "Arguments for '%s' must be a key/value pair", a)
		}
		out = out.Merge(whisk.Params{{Key: args[i+1], Value: jsonValue(args[i+2])}})
		i += 2
	}
	return rest, out, nil
}

// feedParams are the parameters a feed action gets: the user's, then
// lifecycleEvent, triggerName ("/ns/trigger" with the namespace as typed,
// "_" unresolved, as wsk sends it) and authKey.
func feedParams(user whisk.Params, event, ns, trigger, auth string) whisk.Params {
	return user.Merge(whisk.Params{
		{Key: feedLifecycle, Value: jsonString(event)},
		{Key: feedTrigger, Value: jsonString("/" + ns + "/" + trigger)},
		{Key: feedAuthKey, Value: jsonString(auth)},
	})
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// fullFeedName is the feed annotation wsk writes: "/ns/pkg/action", with
// "_" for a name without a namespace.
func fullFeedName(feed string) string {
	if strings.HasPrefix(feed, "/") {
		return feed
	}
	return "/_/" + feed
}

// invokeFeed runs a feed action blocking (result=false), as wsk does, and
// prints its record. A failed activation is an error.
func (r *runner) invokeFeed(cl *client.Client, feed string, params whisk.Params) error {
	ns, entity := client.SplitName(feed, "_")
	inv, err := cl.Invoke(r.ctx, feed, paramsObject(params), client.InvokeOptions{Blocking: true})
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) && ce.Application && inv != nil {
			printJSON(r.errw, inv.Body)
		}
		return err
	}
	if !inv.Finished() {
		return fmt.Errorf("the feed action did not finish in time (activation %s)", inv.ActivationID)
	}
	fmt.Fprintf(r.out, "ok: invoked /%s/%s with id %s\n", ns, entity, inv.ActivationID)
	printJSON(r.out, inv.Body)
	return nil
}

// triggerPut is `trigger create` and `trigger update`, with wsk's feed
// lifecycle: create with --feed PUTs the trigger with the feed annotation,
// runs the feed with CREATE and, if that fails, deletes the trigger again
// (running the feed with DELETE first, as wsk's rollback does); update of
// a feed trigger runs the feed with UPDATE and does not PUT the trigger.
func (r *runner) triggerPut(args []string, update bool) error {
	cmd := "trigger create"
	if update {
		cmd = "trigger update"
	}
	args, feedP, err := extractPairs(cmd, args, "-F", "--feed-param")
	if err != nil {
		return err
	}
	args, trigP, err := extractPairs(cmd, args, "-T", "--trigger-param")
	if err != nil {
		return err
	}
	extended := feedP != nil || trigP != nil
	args, kv, err := extractKeyValues(cmd, args, true)
	if err != nil {
		return err
	}
	fs := r.newFlags(cmd)
	var feed string
	if !update {
		fs.StringVar(&feed, "feed", "", "")
		fs.StringVar(&feed, "f", "", "")
	}
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 1, 1, "A trigger name is required."); err != nil {
		return err
	}
	if extended && kv.hasParams {
		return generalErr("Incorrect usage. Cannot combine --feed-param or --trigger-param flag with neither --param nor --param-file flag")
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	name := pos[0]
	ns, entity := client.SplitName(name, cfg.namespace)
	// The parameters of the trigger and of its feed: -p goes to the feed
	// when there is one; with -F/-T each goes its own way.
	userFeed, userTrig := kv.params, kv.params
	if extended {
		userFeed, userTrig = feedP, trigP
	}

	if update {
		old, err := cl.GetTrigger(r.ctx, name)
		switch {
		case client.StatusOf(err) == 404:
			// wsk creates a trigger that does not exist.
			put := &client.TriggerPut{Name: entity, Parameters: userTrig, Annotations: kv.annots}
			if _, err := cl.PutTrigger(r.ctx, name, put, false); err != nil {
				return fmt.Errorf("Unable to create trigger '%s': %w", entity, err)
			}
			fmt.Fprintf(r.out, "ok: created trigger %s\n", entity)
			return nil
		case err != nil:
			return fmt.Errorf("Unable to get trigger '%s': %w", entity, err)
		}
		f := annotationString(old.Annotations, annFeed)
		if extended {
			put := &client.TriggerPut{Name: entity, Parameters: trigP, Annotations: kv.annots}
			if _, err := cl.PutTrigger(r.ctx, name, put, true); err != nil {
				return fmt.Errorf("Unable to update trigger '%s': %w", entity, err)
			}
			if f == "" && feedP != nil {
				return generalErr("Unable to configure feed '%s': this trigger does not contain a feed", entity)
			}
		}
		if f != "" && (!extended || feedP != nil) {
			if err := r.invokeFeed(cl, f, feedParams(userFeed, feedUpdate, ns, entity, cfg.auth)); err != nil {
				return fmt.Errorf("Unable to create trigger '%s': %w", entity, err)
			}
		}
		if f == "" && !extended {
			put := &client.TriggerPut{Name: entity, Parameters: userTrig, Annotations: kv.annots}
			if _, err := cl.PutTrigger(r.ctx, name, put, true); err != nil {
				return fmt.Errorf("Unable to update trigger '%s': %w", entity, err)
			}
		}
		fmt.Fprintf(r.out, "ok: updated trigger %s\n", entity)
		return nil
	}

	if feed == "" && feedP != nil {
		return generalErr("Incorrect usage. Trigger without a feed cannot have feed parameters")
	}
	put := &client.TriggerPut{Name: entity, Annotations: kv.annots}
	if feed != "" {
		put.Annotations = put.Annotations.Merge(whisk.Params{{Key: annFeed, Value: jsonString(fullFeedName(feed))}})
		if extended {
			put.Parameters = trigP
		}
	} else {
		put.Parameters = userTrig
	}
	if _, err := cl.PutTrigger(r.ctx, name, put, false); err != nil {
		return fmt.Errorf("Unable to create trigger '%s': %w", entity, err)
	}
	if feed != "" {
		if err := r.invokeFeed(cl, fullFeedName(feed), feedParams(userFeed, feedCreate, ns, entity, cfg.auth)); err != nil {
			reason := fmt.Errorf("Unable to configure feed '%s': %w", fullFeedName(feed), err)
			// Roll back as wsk does: the feed's DELETE, then the trigger.
			if rbErr := r.deleteTriggerWithFeed(cl, name, ns, entity, cfg.auth, userFeed); rbErr != nil {
				fmt.Fprintf(r.errw, "warning: trigger '%s' was not removed: %v\n", entity, rbErr)
			}
			return fmt.Errorf("Unable to create trigger '%s': %w", entity, reason)
		}
	}
	fmt.Fprintf(r.out, "ok: created trigger %s\n", entity)
	return nil
}

// annotationString is a string annotation, "" when absent or not a string.
func annotationString(p whisk.Params, key string) string {
	v, ok := p.Get(key)
	if !ok {
		return ""
	}
	var s string
	_ = json.Unmarshal(v, &s)
	return s
}

// deleteTriggerWithFeed is wsk's trigger delete: GET the trigger, run its
// feed with DELETE (a failure is only reported), DELETE the trigger.
func (r *runner) deleteTriggerWithFeed(cl *client.Client, name, ns, entity, auth string, user whisk.Params) error {
	t, err := cl.GetTrigger(r.ctx, name)
	if err != nil {
		return fmt.Errorf("Unable to get trigger '%s': %w", entity, err)
	}
	if f := annotationString(t.Annotations, annFeed); f != "" {
		if err := r.invokeFeed(cl, f, feedParams(user, feedDelete, ns, entity, auth)); err != nil {
			fmt.Fprintf(r.errw, "error: Unable to configure feed '%s': %v\n", f, err)
		}
	}
	if _, err := cl.DeleteTrigger(r.ctx, name); err != nil {
		return fmt.Errorf("Unable to delete trigger '%s': %w", entity, err)
	}
	return nil
}

func (r *runner) triggerDelete(args []string) error {
	const cmd = "trigger delete"
	args, kv, err := extractKeyValues(cmd, args, false)
	if err != nil {
		return err
	}
	fs := r.newFlags(cmd)
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 1, 1, "A trigger name is required."); err != nil {
		return err
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	ns, entity := client.SplitName(pos[0], cfg.namespace)
	if err := r.deleteTriggerWithFeed(cl, pos[0], ns, entity, cfg.auth, kv.params); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "ok: deleted trigger %s\n", entity)
	return nil
}

func (r *runner) triggerFire(args []string) error {
	const cmd = "trigger fire"
	args, kv, err := extractKeyValues(cmd, args, false)
	if err != nil {
		return err
	}
	fs := r.newFlags(cmd)
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 1, 1, "A trigger name is required."); err != nil {
		return err
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	ns, entity := client.SplitName(pos[0], cfg.namespace)
	id, err := cl.FireTrigger(r.ctx, pos[0], paramsObject(kv.params))
	if err != nil {
		return fmt.Errorf("Unable to fire trigger '%s': %w", entity, err)
	}
	fmt.Fprintf(r.out, "ok: triggered /%s/%s with id %s\n", ns, entity, id)
	return nil
}

func (r *runner) triggerGet(args []string) error {
	g, err := r.parseGet("trigger", args)
	if err != nil {
		return err
	}
	t, err := g.cl.GetTrigger(r.ctx, g.name)
	if err != nil {
		return fmt.Errorf("Unable to get trigger '%s': %w", g.entity, err)
	}
	if f := annotationString(t.Annotations, annFeed); f != "" {
		if err := r.invokeFeed(g.cl, f, feedParams(nil, feedRead, g.ns, g.entity, g.cfg.auth)); err != nil {
			return fmt.Errorf("Unable to configure feed '%s': %w", f, err)
		}
		return nil
	}
	return r.show(g, t, func() { printTriggerSummary(r, t) })
}

// printTriggerSummary is wsk's `trigger get --summary`.
func printTriggerSummary(r *runner, t *whisk.Trigger) {
	names := make([]string, 0, len(t.Parameters))
	for _, p := range t.Parameters {
		names = append(names, "*"+p.Key)
	}
	sort.Strings(names)
	params := strings.Join(names, ", ")
	if params == "" {
		params = "none defined"
	}
	fmt.Fprintf(r.out, "trigger /%s/%s\n   (parameters: %s)\n", t.Namespace, t.Name, params)
}

func (r *runner) triggerList(args []string) error {
	const cmd = "trigger list"
	l, err := r.parseList(cmd, args)
	if err != nil {
		return err
	}
	ns := strings.Trim(l.arg, "/")
	ts, err := l.cl.ListTriggers(r.ctx, ns, client.ListOptions{Limit: l.limit, Skip: l.skip})
	if err != nil {
		return fmt.Errorf("Unable to obtain the list of triggers for namespace '%s': %w", listNamespaceName(ns, l.cfg.namespace), err)
	}
	if l.nameSort {
		sort.SliceStable(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	}
	fmt.Fprintln(r.out, "triggers")
	for _, t := range ts {
		// wsk shows every trigger as private.
		fmt.Fprintf(r.out, "%-70s %s\n", "/"+t.Namespace+"/"+t.Name, "private")
	}
	return nil
}

// listNamespaceName is the namespace wsk names in list errors.
func listNamespaceName(ns, def string) string {
	if ns == "" {
		ns = def
	}
	if ns == "_" {
		return "default"
	}
	return ns
}
