package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/eddy-faas/eddy/internal/whisk"
)

const usageStatus = `Usage: eddy status [--etcd ENDPOINTS | --apihost HOST] [--json]

Show an Eddy cluster as etcd holds it: schedulers (id, gRPC address, queues
led), invokers (status, free and user memory), and per action queue its
leader, followers, registered containers and in-flight creations.

      --etcd ENDPOINTS   read etcd directly (comma-separated client URLs;
                         also EDDY_ETCD)
      --json             print JSON (the body of GET /eddy/v1/status)

Without --etcd, the status comes from the API host's GET /eddy/v1/status
(authenticated like the API, from the flags, EDDY_APIHOST / EDDY_AUTH or
~/.wskprops).
` + globalFlagsHelp

// status is `eddy status`.
func (r *runner) status(args []string) error {
	const cmd = "status"
	fs := r.newFlags(cmd)
	etcd := fs.String("etcd", "", "")
	asJSON := fs.Bool("json", false, "")
	pos, err := r.parse(fs, cmd, args)
	if err != nil {
		return err
	}
	if err := checkArgs(cmd, pos, 0, 0, "No arguments are required."); err != nil {
		return err
	}
	if *etcd == "" && r.g.apihost == "" {
		*etcd = r.env.Getenv("EDDY_ETCD")
	}
	var st *whisk.ClusterStatus
	if *etcd != "" {
		if r.env.EtcdStatus == nil {
			return generalErr("reading etcd directly is not available in this build")
		}
		var eps []string
		for _, e := range strings.Split(*etcd, ",") {
			if e = strings.TrimSpace(e); e != "" {
				eps = append(eps, e)
			}
		}
		if st, err = r.env.EtcdStatus(r.ctx, eps); err != nil {
			return generalErr("%v", err)
		}
	} else {
		cl, _, err := r.client(true)
		if err != nil {
			return err
		}
		if st, err = cl.Status(r.ctx); err != nil {
			return fmt.Errorf("Unable to obtain the cluster status: %w", err)
		}
	}
	if *asJSON {
		printJSON(r.out, st)
		return nil
	}
	printStatus(r.out, st)
	return nil
}

// printStatus prints the three tables of `eddy status`.
func printStatus(w io.Writer, st *whisk.ClusterStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	orDash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	fmt.Fprintf(tw, "SCHEDULERS (%d)\n", len(st.Schedulers))
	fmt.Fprintln(tw, "ID\tADDRESS\tQUEUES")
	for _, s := range st.Schedulers {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", s.ID, s.Addr, s.Queues)
	}
	fmt.Fprintf(tw, "\nINVOKERS (%d)\n", len(st.Invokers))
	fmt.Fprintln(tw, "ID\tSTATUS\tFREE MB\tUSER MB\tBACKEND\tSTEM CELLS")
	for _, i := range st.Invokers {
		var cells []string
		for _, c := range i.StemCells {
			cells = append(cells, fmt.Sprintf("%s/%dMB×%d", c.Kind, c.MemoryMB, c.Count))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", i.ID, i.Status, i.FreeMemory, i.UserMemory, orDash(i.Backend), orDash(strings.Join(cells, ",")))
	}
	fmt.Fprintf(tw, "\nQUEUES (%d)\n", len(st.Queues))
	fmt.Fprintln(tw, "ACTION\tLEADER\tFOLLOWERS\tCONTAINERS\tIDLE\tCREATING")
	for _, q := range st.Queues {
		fmt.Fprintf(tw, "/%s/%s\t%s\t%s\t%d\t%d\t%d\n", q.Namespace, q.Action, orDash(q.Leader),
			orDash(strings.Join(q.Followers, ",")), q.Containers, q.Idle, q.Creations)
	}
	tw.Flush()
}
