// Command eddy is the one Eddy binary: the platform (`eddy standalone`, or
// one role per process in a cluster: `eddy controller|scheduler|invoker`,
// with `eddy etcd` for local etcd members), the runtime server that runs inside containers
// (`eddy runtime`), and the CLI (`eddy action …`, `eddy activation …`,
// `eddy property …`), which speaks the OpenWhisk REST API and reads the same
// ~/.wskprops as the wsk CLI.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/eddy-faas/eddy/internal/bench"
	"github.com/eddy-faas/eddy/internal/cli"
	"github.com/eddy-faas/eddy/internal/runtime"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "standalone":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := standalone(ctx, args[1:], stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "eddy standalone: %v\n", err)
			return 1
		}
		return 0
	case "controller", "scheduler", "invoker":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := runRole(ctx, args[0], args[1:], stdout, stderr, os.Getenv); err != nil {
			fmt.Fprintf(stderr, "eddy %s: %v\n", args[0], err)
			return 1
		}
		return 0
	case "etcd":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := etcdMember(ctx, args[1:], stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "eddy etcd: %v\n", err)
			return 1
		}
		return 0
	case "runtimes":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := runtimesCmd(ctx, args[1:], stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "eddy runtimes: %v\n", err)
			return 1
		}
		return 0
	case "admin":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return adminCmd(ctx, args[1:], stdout, stderr)
	case "runtime":
		return runtime.Main(args[1:], stdout, stderr)
	case "bench":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return bench.Main(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "eddy %s\n", version)
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	home, _ := os.UserHomeDir()
	return cli.Run(ctx, args, cli.Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: os.Getenv, HomeDir: home,
		EtcdStatus: statusFromEtcd})
}

func usage(w io.Writer) {
	fmt.Fprint(w, `eddy: a serverless platform that speaks the OpenWhisk API.

Platform:
  eddy standalone [--port 3233] [--data-dir DIR] [--backend auto|process|docker]
                         run controller, scheduler and invoker in one process
  eddy controller --etcd URLS --kafka BROKERS --postgres URL [--port 3233]
  eddy scheduler  --etcd URLS --kafka BROKERS --postgres URL --id ID [--listen ADDR]
  eddy invoker    --etcd URLS --kafka BROKERS --postgres URL --id ID [--backend B]
                         one cluster role per process (flags, EDDY_* variables or
                         --config FILE; see docs/cluster.md)
  eddy etcd --name N --data-dir D --client-url U --peer-url P --initial-cluster LIST
                         one embedded etcd member, for local clusters
  eddy admin user create|get|delete|list, eddy admin limits set|get|delete
                         tenants: subjects, namespaces, keys and namespace limits,
                         in the store (--data-dir or --postgres; 'eddy admin help')
  eddy admin certs --out DIR [--hosts H,...]
                         a CA and a certificate per role, for TLS (docs/cluster.md)
  eddy status [--etcd URLS | --apihost H] [--json]
                         schedulers, invokers and queues of a cluster
  eddy runtime           the runtime server that runs inside action containers
  eddy runtimes build    build the runtime images on the local Docker daemon (no registry)
  eddy bench [--quick]   measure warm latency, throughput, cold start, bursts and many actions
                         against their floors, in one run (see bench/RESULTS.md)

Client (the wsk commands and flags, reading ~/.wskprops):
  eddy property set|get|unset
  eddy action create|update|get|list|delete|invoke
  eddy activation list|get|logs|result
  eddy trigger create|update|get|list|fire|delete
  eddy rule create|update|enable|disable|status|get|list|delete
  eddy namespace list

Run 'eddy standalone -h' or 'eddy action -h' for details.
`)
}
