// Command eddy is the one Eddy binary: the platform (`eddy standalone`, and
// per role later), the runtime server that runs inside containers
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
	case "runtimes":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := runtimesCmd(ctx, args[1:], stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "eddy runtimes: %v\n", err)
			return 1
		}
		return 0
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
	return cli.Run(ctx, args, cli.Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: os.Getenv, HomeDir: home})
}

func usage(w io.Writer) {
	fmt.Fprint(w, `eddy: a serverless platform that speaks the OpenWhisk API.

Platform:
  eddy standalone [--port 3233] [--data-dir DIR] [--backend auto|process|docker]
                         run controller, scheduler and invoker in one process
  eddy runtime           the runtime server that runs inside action containers
  eddy runtimes build    build the runtime images on the local Docker daemon (no registry)
  eddy bench [--quick]   measure warm latency, throughput, cold start, bursts and many actions
                         against their floors, in one run (see bench/RESULTS.md)

Client (the wsk commands and flags, reading ~/.wskprops):
  eddy property set|get|unset
  eddy action create|update|get|list|delete|invoke
  eddy activation list|get|logs|result
  eddy namespace list

Run 'eddy standalone -h' or 'eddy action -h' for details.
`)
}
