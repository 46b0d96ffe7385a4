package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/eddy-faas/eddy/internal/images"
)

// runtimesCmd is `eddy runtimes build`: it builds Eddy's runtime images on
// the local Docker daemon, with no registry.
func runtimesCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "build" {
		return errors.New("usage: eddy runtimes build [--families native,python,nodejs,skeleton,go,php,ruby,java] [--parallel N] [--as-dockerskeleton] [--force] [--runtime-binary PATH]")
	}
	fs := flag.NewFlagSet("eddy runtimes build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	families := fs.String("families", strings.Join(images.Families, ","), "image families to build")
	force := fs.Bool("force", false, "rebuild even when nothing changed")
	bin := fs.String("runtime-binary", "", "static eddy-runtime binary (default: eddy-runtime beside this eddy)")
	mirror := fs.String("mirror", "", "Debian mirror for debootstrap (default: the system's)")
	parallel := fs.Int("parallel", 3, "root file systems made at once")
	asSkeleton := fs.Bool("as-dockerskeleton", false, "also tag the skeleton image openwhisk/dockerskeleton, for --native actions offline")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *bin == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		*bin = filepath.Join(filepath.Dir(self), "eddy-runtime")
	}
	if _, err := os.Stat(*bin); err != nil {
		return fmt.Errorf("runtime binary %s: %w (build it with `make build` or CGO_ENABLED=0 go build -o %s ./cmd/eddy-runtime)", *bin, err, *bin)
	}
	return images.Build(ctx, images.Options{
		RuntimeBinary: *bin, Families: strings.Split(*families, ","), Force: *force,
		Mirror: *mirror, Progress: stdout, TagDockerskeleton: *asSkeleton, Parallel: *parallel,
	})
}
