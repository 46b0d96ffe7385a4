package cli

import (
	"fmt"
	"strings"

	"github.com/eddy-faas/eddy/internal/client"
)

func (r *runner) propertySet(args []string) error {
	const cmd = "property set"
	fs := r.newFlags(cmd, "apihost", "auth")
	// --apihost and --auth here are the values to store, not overrides.
	var apihost, auth, namespace, apiversion string
	fs.StringVar(&apihost, "apihost", "", "")
	fs.StringVar(&auth, "auth", "", "")
	fs.StringVar(&auth, "u", "", "")
	fs.StringVar(&namespace, "namespace", "", "")
	fs.StringVar(&apiversion, "apiversion", "", "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 0, 0, "No arguments are allowed."); err != nil {
		return err
	}
	if apihost == "" && auth == "" && namespace == "" && apiversion == "" {
		return usageErr(cmd, "Set at least one of --apihost, --auth, --namespace, --apiversion.")
	}
	p, err := r.loadProps()
	if err != nil {
		return err
	}
	var msg strings.Builder
	if auth != "" {
		if !strings.Contains(auth, ":") {
			return generalErr("Unable to set the property value: the authorization key must have the form UUID:KEY")
		}
		p.set("AUTH", auth)
		msg.WriteString("ok: whisk auth set. Run 'eddy property get --auth' to see the new value.\n")
	}
	if apihost != "" {
		if _, err := client.ParseAPIHost(apihost); err != nil {
			return generalErr("Unable to set API host value; the API host value '%s' is invalid: %v", apihost, err)
		}
		p.set("APIHOST", apihost)
		fmt.Fprintf(&msg, "ok: whisk API host set to %s\n", apihost)
	}
	if apiversion != "" {
		p.set("APIVERSION", apiversion)
		fmt.Fprintf(&msg, "ok: whisk API version set to %s\n", apiversion)
	}
	if namespace != "" {
		p.set("NAMESPACE", namespace)
		fmt.Fprintf(&msg, "ok: whisk namespace set to %s\n", namespace)
	}
	if err := r.saveProps(p); err != nil {
		return err
	}
	fmt.Fprint(r.out, msg.String())
	return nil
}

func (r *runner) propertyUnset(args []string) error {
	const cmd = "property unset"
	fs := r.newFlags(cmd, "apihost", "auth")
	var apihost, auth, namespace, apiversion bool
	fs.BoolVar(&apihost, "apihost", false, "")
	fs.BoolVar(&auth, "auth", false, "")
	fs.BoolVar(&namespace, "namespace", false, "")
	fs.BoolVar(&apiversion, "apiversion", false, "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 0, 0, "No arguments are allowed."); err != nil {
		return err
	}
	p, err := r.loadProps()
	if err != nil {
		return err
	}
	var msg strings.Builder
	if auth {
		p.unset("AUTH")
		msg.WriteString("ok: whisk auth unset.\n")
	}
	if namespace {
		p.unset("NAMESPACE")
		msg.WriteString("ok: whisk namespace unset; the default value of _ will be used.\n")
	}
	if apihost {
		p.unset("APIHOST")
		msg.WriteString("ok: whisk API host unset.\n")
	}
	if apiversion {
		p.unset("APIVERSION")
		msg.WriteString("ok: whisk API version unset; the default value of v1 will be used.\n")
	}
	if err := r.saveProps(p); err != nil {
		return err
	}
	fmt.Fprint(r.out, msg.String())
	return nil
}

func (r *runner) propertyGet(args []string) error {
	const cmd = "property get"
	fs := r.newFlags(cmd, "apihost", "auth")
	var all, apihost, auth, namespace, apiversion, cliversion, apibuild, apibuildno bool
	fs.BoolVar(&all, "all", false, "")
	fs.BoolVar(&apihost, "apihost", false, "")
	fs.BoolVar(&auth, "auth", false, "")
	fs.BoolVar(&namespace, "namespace", false, "")
	fs.BoolVar(&apiversion, "apiversion", false, "")
	fs.BoolVar(&cliversion, "cliversion", false, "")
	fs.BoolVar(&apibuild, "apibuild", false, "")
	fs.BoolVar(&apibuildno, "apibuildno", false, "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 0, 0, "No arguments are allowed."); err != nil {
		return err
	}
	if !(apihost || auth || namespace || apiversion || cliversion || apibuild || apibuildno) {
		all = true
	}
	c, err := r.config()
	if err != nil {
		return err
	}
	p, err := r.loadProps()
	if err != nil {
		return err
	}
	version := p.get("APIVERSION")
	if version == "" {
		version = "v1"
	}
	if all || auth {
		fmt.Fprintf(r.out, "whisk auth\t\t%s\n", c.auth)
	}
	if all || apihost {
		fmt.Fprintf(r.out, "whisk API host\t\t%s\n", c.apihost)
	}
	if all || apiversion {
		fmt.Fprintf(r.out, "whisk API version\t%s\n", version)
	}
	if all || namespace {
		fmt.Fprintf(r.out, "whisk namespace\t\t%s\n", c.namespace)
	}
	if all || cliversion {
		fmt.Fprintf(r.out, "whisk CLI version\t%s\n", Version)
	}
	if all || apibuild || apibuildno {
		build, buildno := "Unknown", "Unknown"
		var infoErr error
		if cl, _, err := r.client(false); err != nil {
			infoErr = err
		} else if info, err := cl.APIInfo(r.ctx); err != nil {
			infoErr = err
		} else {
			build, buildno = info.Build, info.BuildNo
		}
		if all || apibuild {
			fmt.Fprintf(r.out, "whisk API build\t\t%s\n", build)
		}
		if all || apibuildno {
			fmt.Fprintf(r.out, "whisk API build number\t%s\n", buildno)
		}
		if infoErr != nil {
			return fmt.Errorf("Unable to obtain API build information: %w", infoErr)
		}
	}
	return nil
}
