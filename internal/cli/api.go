package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/eddy-faas/eddy/internal/client"
)

var apiVerbs = map[string]bool{"GET": true, "PUT": true, "POST": true, "DELETE": true, "PATCH": true, "HEAD": true, "OPTIONS": true}

var pathParamRE = regexp.MustCompile(`\{([^}/]+)\}`)

// apiCreate is `api create [BASE_PATH] API_PATH API_VERB ACTION` or
// `api create --config-file FILE`, as wsk sends them (docs/webactions.md).
func (r *runner) apiCreate(args []string) error {
	const cmd = "api create"
	fs := r.newFlags(cmd)
	var respType, apiName, configFile string
	fs.StringVar(&respType, "response-type", "json", "")
	for _, n := range []string{"apiname", "n"} {
		fs.StringVar(&apiName, n, "", "")
	}
	for _, n := range []string{"config-file", "c"} {
		fs.StringVar(&configFile, n, "", "")
	}
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	cl, cfg, err := r.client(true)
	if err != nil {
		return err
	}
	if len(pos) == 0 && configFile != "" {
		b, err := os.ReadFile(configFile)
		if err != nil {
			return generalErr("Error reading swagger file '%s': %v", configFile, err)
		}
		api, err := cl.CreateAPI(r.ctx, client.APIDoc{Namespace: cfg.namespace, Swagger: string(b)}, respType)
		if err != nil {
			return fmt.Errorf("Unable to create API: %w", err)
		}
		printCreated(r, api)
		return nil
	}
	if err := checkArgs(cmd, pos, 3, 4, "Specify a swagger file or specify an API base path with an API path, an API verb, and an action name."); err != nil {
		return err
	}
	base := "/"
	if len(pos) == 4 {
		base, pos = pos[0], pos[1:]
	}
	rel, verb, action := pos[0], strings.ToUpper(pos[1]), pos[2]
	if !strings.HasPrefix(base, "/") {
		if apiName != "" {
			return usageErr(cmd, "An API name can only be specified once.")
		}
		apiName, base = base, "/"
	}
	if !strings.HasPrefix(rel, "/") {
		return usageErr(cmd, "'%s' must begin with '/'.", rel)
	}
	if !apiVerbs[verb] {
		return usageErr(cmd, "'%s' is not a valid API verb.  Valid values are: [get delete put post patch head options]", pos[1])
	}
	params := pathParamRE.FindAllStringSubmatch(rel, -1)
	if len(params) > 0 && respType != "http" {
		return usageErr(cmd, "A response type of 'http' is required when using path parameters.")
	}
	ns, entity := client.SplitName(action, cfg.namespace)
	a, err := cl.GetAction(r.ctx, action, false)
	if err != nil {
		return fmt.Errorf("Unable to get action '%s': %w", entity, err)
	}
	if !a.Annotations.IsTrue(annWebExport) {
		return usageErr(cmd, "Action '%s' is not a web action. Issue 'eddy action update \"%s\" --web true' to convert the action to a web action.", action, action)
	}
	pkg, name := "default", entity
	if p, n, ok := strings.Cut(entity, "/"); ok {
		pkg, name = p, n
	}
	doc := client.APIDoc{
		Namespace: cfg.namespace, APIName: apiName, BasePath: base, RelPath: rel, Method: verb,
		Action: &client.APIAction{Name: entity, Namespace: ns, BackendMethod: verb,
			BackendURL: cl.BaseURL() + "/api/v1/web/" + ns + "/" + pkg + "/" + name + ".http", AuthKey: cfg.auth},
	}
	if strings.HasPrefix(base, "/") {
		doc.ID = "API:" + cfg.namespace + ":" + base
	}
	if v, ok := a.Annotations.Get(annWebSecure); ok {
		doc.Action.SecureKey = json.RawMessage(v) // exactly as stored: a number stays exact
	}
	for _, p := range params {
		doc.PathParameters = append(doc.PathParameters, map[string]any{"name": p[1], "in": "path",
			"description": "Default description for '" + p[1] + "'", "required": true, "type": "string"})
	}
	api, err := cl.CreateAPI(r.ctx, doc, respType)
	if err != nil {
		return fmt.Errorf("Unable to create API: %w", err)
	}
	fmt.Fprintf(r.out, "ok: created API %s%s %s for action /%s/%s\n%s%s\n",
		strings.TrimSuffix(base, "/"), rel, verb, ns, entity, strings.TrimSuffix(api.GwAPIURL, "/"), rel)
	return nil
}

// printCreated prints every operation of a swagger-created API.
func printCreated(r *runner, api *client.API) {
	for _, op := range apiOps(api) {
		fmt.Fprintf(r.out, "ok: created API %s%s %s for action %s\n%s\n", strings.TrimSuffix(op.base, "/"), op.rel,
			strings.ToUpper(op.verb), op.action, op.url)
	}
}

// apiOp is one operation of an API, for printing.
type apiOp struct{ base, rel, verb, action, title, url string }

// apiOps lists an API's operations sorted by path and verb.
func apiOps(api *client.API) []apiOp {
	var out []apiOp
	base, _ := api.APIDoc["basePath"].(string)
	info, _ := api.APIDoc["info"].(map[string]any)
	title, _ := info["title"].(string)
	paths, _ := api.APIDoc["paths"].(map[string]any)
	for rel, p := range paths {
		ops, _ := p.(map[string]any)
		for verb, o := range ops {
			op, _ := o.(map[string]any)
			x, _ := op["x-openwhisk"].(map[string]any)
			action := ""
			if x != nil {
				ns, _ := x["namespace"].(string)
				pkg, _ := x["package"].(string)
				name, _ := x["action"].(string)
				action = "/" + ns + "/" + name
				if pkg != "" {
					action = "/" + ns + "/" + pkg + "/" + name
				}
			}
			out = append(out, apiOp{base: base, rel: rel, verb: verb, action: action, title: title,
				url: strings.TrimSuffix(api.GwAPIURL, "/") + rel})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].rel != out[j].rel {
			return out[i].rel < out[j].rel
		}
		return out[i].verb < out[j].verb
	})
	return out
}

// apiList is `api list [BASE_PATH|API_NAME] [API_PATH [API_VERB]]`.
func (r *runner) apiList(args []string) error {
	const cmd = "api list"
	fs := r.newFlags(cmd)
	var limit, skip int
	for _, n := range []string{"limit", "l"} {
		fs.IntVar(&limit, n, defaultListMax, "")
	}
	for _, n := range []string{"skip", "s"} {
		fs.IntVar(&skip, n, 0, "")
	}
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 0, 3, ""); err != nil {
		return err
	}
	cl, _, err := r.client(true)
	if err != nil {
		return err
	}
	bp := ""
	if len(pos) > 0 {
		bp = pos[0]
	}
	apis, err := cl.GetAPIs(r.ctx, bp, client.ListOptions{Limit: limit, Skip: skip})
	if err != nil {
		return fmt.Errorf("Unable to obtain the API list: %w", err)
	}
	fmt.Fprintln(r.out, "ok: APIs")
	const format = "%-30s %7s %20s  %s\n"
	fmt.Fprintf(r.out, format, "Action", "Verb", "API Name", "URL")
	for i := range apis {
		for _, op := range apiOps(&apis[i]) {
			if len(pos) > 1 && op.rel != pos[1] {
				continue
			}
			if len(pos) > 2 && !strings.EqualFold(op.verb, pos[2]) {
				continue
			}
			fmt.Fprintf(r.out, format, op.action, op.verb, op.title, op.url)
		}
	}
	return nil
}

// apiGet is `api get BASE_PATH|API_NAME`: the API's swagger document.
func (r *runner) apiGet(args []string) error {
	const cmd = "api get"
	fs := r.newFlags(cmd)
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 1, 1, "An API base path or API name is required."); err != nil {
		return err
	}
	cl, _, err := r.client(true)
	if err != nil {
		return err
	}
	apis, err := cl.GetAPIs(r.ctx, pos[0], client.ListOptions{Limit: defaultListMax})
	if err != nil {
		return fmt.Errorf("Unable to get API '%s': %w", pos[0], err)
	}
	if len(apis) == 0 {
		return generalErr("API does not exist for basepath %s", pos[0])
	}
	printJSON(r.out, apis[0].APIDoc)
	return nil
}

// apiDelete is `api delete BASE_PATH|API_NAME [API_PATH [API_VERB]]`.
func (r *runner) apiDelete(args []string) error {
	const cmd = "api delete"
	fs := r.newFlags(cmd)
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 1, 3, "An API base path or API name is required.  An optional API relative path and operation may also be provided."); err != nil {
		return err
	}
	cl, _, err := r.client(true)
	if err != nil {
		return err
	}
	rel, verb := "", ""
	if len(pos) > 1 {
		if rel = pos[1]; !strings.HasPrefix(rel, "/") {
			return usageErr(cmd, "'%s' must begin with '/'.", rel)
		}
	}
	if len(pos) > 2 {
		if verb = strings.ToUpper(pos[2]); !apiVerbs[verb] {
			return usageErr(cmd, "'%s' is not a valid API verb.  Valid values are: [get delete put post patch head options]", pos[2])
		}
	}
	if err := cl.DeleteAPI(r.ctx, pos[0], rel, verb); err != nil {
		return fmt.Errorf("Unable to delete API: %w", err)
	}
	switch len(pos) {
	case 1:
		fmt.Fprintf(r.out, "ok: deleted API %s\n", pos[0])
	case 2:
		fmt.Fprintf(r.out, "ok: deleted %s from %s\n", rel, pos[0])
	default:
		fmt.Fprintf(r.out, "ok: deleted %s %s from %s\n", rel, verb, pos[0])
	}
	return nil
}
