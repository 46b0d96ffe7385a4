// Package images builds Eddy's runtime images on the local Docker daemon,
// through the Engine API and with no registry:
//
//   - eddy/action-native: FROM scratch plus the static eddy-runtime binary
//     (launcher native) and an empty /tmp;
//   - eddy/action-python:<major.minor>: a Debian root file system made with
//     `debootstrap --variant=minbase` plus python3, imported as
//     eddy/rootfs-python:<suite>, with the runtime binary added on top
//     (launcher python, EDDY_PYTHON=python3);
//   - eddy/action-nodejs:<major>: the same with Debian's nodejs (launcher
//     nodejs, EDDY_NODE=node);
//   - the go, php, ruby and java images and the newer python and nodejs of
//     Debian trixie, made the same way (languages.go).
//
// The tags are the versions the root file system really has (read from
// its dpkg database), not what was asked for. The root file systems are
// made in parallel (parallel.go).
//
// Every image carries the label eddy.build, a hash of what went into it
// (the runtime binary, the Dockerfile, the suite and package list, the
// base image's id). Build skips an image whose label matches, so a second
// run with nothing changed takes seconds; debootstrap runs only when the
// root file system's inputs changed.
//
// The root file systems need root and debootstrap (apt-get install -y
// debootstrap) and reach Debian's package mirror; the native image needs
// neither.
package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/eddy-faas/eddy/internal/container/docker"
)

// Image names and the families Build knows.
const (
	NativeImage = "eddy/action-native"
	PythonRepo  = "eddy/action-python"
	NodejsRepo  = "eddy/action-nodejs"

	Native   = "native"
	Python   = "python"
	Nodejs   = "nodejs"
	Skeleton = "skeleton"

	// SkeletonRepo serves OpenWhisk's dockerskeleton protocol (blackbox
	// actions whose code is an executable or a zip with one, as
	// `wsk action create x f.zip --native` sends), on a Debian root file
	// system of its own with the tools OpenWhisk's dockerskeleton has.
	SkeletonRepo = "eddy/action-skeleton"
	// DockerskeletonImage is the image `--native` actions name.
	DockerskeletonImage = "openwhisk/dockerskeleton"

	// LabelBuild holds the hash of an image's inputs.
	LabelBuild = "eddy.build"
	// LabelVersion holds the interpreter version of a root file system.
	LabelVersion = "eddy.version"

	// DefaultSuite is the Debian release the root file systems come from.
	DefaultSuite = "bookworm"
	// DefaultMirror is used when /etc/apt names no Debian mirror.
	DefaultMirror = "http://deb.debian.org/debian"

	// recipe changes whenever the way images are made changes, so that
	// images of an older Eddy are rebuilt.
	recipe = "eddy-images-1"
)

// Families is every family Build knows, in build order.
var Families = []string{Native, Python, Nodejs, Skeleton, Go, PHP, Ruby, Java, PythonNext, NodejsNext}

// Options says what to build and how.
type Options struct {
	// RuntimeBinary is the static eddy-runtime executable (built with
	// CGO_ENABLED=0 from ./cmd/eddy-runtime); required.
	RuntimeBinary string
	// Families to build (Native, Python, Nodejs); empty means all.
	Families []string
	// Suite is the Debian release (default bookworm).
	Suite string
	// Mirror is the Debian package mirror (default: the first Debian mirror
	// in /etc/apt/sources.list*, else deb.debian.org).
	Mirror string
	// WorkDir holds the root file systems while they are made (default the
	// system's temporary directory); they are deleted afterwards.
	WorkDir string
	// Force rebuilds even images whose inputs did not change.
	Force bool
	// Host is the Docker daemon (default $DOCKER_HOST or the local socket).
	Host string
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// Parallel is how many root file systems are made at once (default
	// 3; 1 builds one family after the other).
	Parallel int
	// TagDockerskeleton also tags the skeleton image as
	// openwhisk/dockerskeleton:latest, so `--native` actions run on a host
	// that cannot pull OpenWhisk's image (an image of that name pulled or
	// loaded by the operator is replaced).
	TagDockerskeleton bool
}

// rootfsSpec is what a Debian-based family is made of.
type rootfsSpec struct {
	family   string
	base     string // the root file system to use, when it is another family's
	repo     string
	packages []string // --include
	pkg      string   // the package whose version names the tag
	tag      func(upstream string) string
	env      []string // runtime env of the final image
	suite    string   // the Debian release, when not Options.Suite
	files    []File   // more files of the final image's build context
	steps    []string // Dockerfile lines after the runtime binary's COPY
}

var rootfsSpecs = map[string]rootfsSpec{
	Python: {
		family: Python, repo: PythonRepo, packages: []string{"python3"}, pkg: "python3",
		tag: majorMinor, env: []string{"EDDY_LAUNCHER=python", "EDDY_PYTHON=python3"},
	},
	Nodejs: {
		family: Nodejs, repo: NodejsRepo, packages: []string{"nodejs"}, pkg: "nodejs",
		tag: major, env: []string{"EDDY_LAUNCHER=nodejs", "EDDY_NODE=node"},
	},
	Skeleton: {
		// The tools OpenWhisk's dockerskeleton gives every exec (its
		// Dockerfile: python, bash, perl, jq, zip, git, curl, wget,
		// openssl, ca-certificates, sed, openssh-client), from Debian's
		// packages; exec lives at /action/exec as there.
		family: Skeleton, repo: SkeletonRepo, packages: skeletonPackages, pkg: "python3",
		tag: func(string) string { return "latest" }, env: []string{"EDDY_LAUNCHER=skeleton", "EDDY_WORKDIR=/"},
	},
}

// skeletonPackages are the skeleton image's packages.
var skeletonPackages = []string{
	"python3", "python-is-python3", "bash", "perl", "jq", "zip", "unzip", "git", "curl", "wget",
	"openssl", "ca-certificates", "sed", "openssh-client",
}

// rootfsName names the root file system a family is built on.
func (s rootfsSpec) rootfsName() string {
	if s.base != "" {
		return s.base
	}
	return s.family
}

// builder carries one Build's state.
type builder struct {
	opts      Options
	cli       *client.Client
	runtime   []byte
	runtimeID string // sha256 of the runtime binary

	progressMu sync.Mutex // families build in parallel (parallel.go)
}

// Build builds the images of opts.Families that are missing or out of date,
// writing progress lines to opts.Progress.
func Build(ctx context.Context, opts Options) error {
	if opts.RuntimeBinary == "" {
		return errors.New("images: no runtime binary (build it with CGO_ENABLED=0 go build ./cmd/eddy-runtime)")
	}
	if len(opts.Families) == 0 {
		opts.Families = Families
	}
	for _, f := range opts.Families {
		if !slices.Contains(Families, f) {
			return fmt.Errorf("images: unknown family %q (known: %v)", f, Families)
		}
	}
	if opts.Suite == "" {
		opts.Suite = DefaultSuite
	}
	if opts.Mirror == "" {
		opts.Mirror = SystemMirror()
	}
	if opts.WorkDir == "" {
		opts.WorkDir = os.TempDir()
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	bin, err := os.ReadFile(opts.RuntimeBinary)
	if err != nil {
		return fmt.Errorf("images: runtime binary: %w", err)
	}
	sum := sha256.Sum256(bin)
	cli, err := docker.Dial(ctx, opts.Host, 5*time.Second)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	defer cli.Close()
	b := &builder{opts: opts, cli: cli, runtime: bin, runtimeID: hex.EncodeToString(sum[:])}

	return b.buildAll(ctx)
}

// family builds one family's image (and tags the skeleton's).
func (b *builder) family(ctx context.Context, f string) error {
	start := time.Now()
	var ref string
	var built bool
	var err error
	if f == Native {
		ref, built, err = b.native(ctx)
	} else {
		spec, ok := rootfsSpecs[f]
		if !ok {
			spec = languageSpecs()[f]
		}
		ref, built, err = b.debian(ctx, spec)
	}
	if err != nil {
		return fmt.Errorf("images: %s: %w", f, err)
	}
	if f == Skeleton && b.opts.TagDockerskeleton {
		if err := b.cli.ImageTag(ctx, ref, DockerskeletonImage+":latest"); err != nil {
			return fmt.Errorf("images: tagging %s as %s: %w", ref, DockerskeletonImage, err)
		}
		b.progress("%s: tagged as %s:latest", ref, DockerskeletonImage)
	}
	if built {
		b.progress("%s: built in %s", ref, time.Since(start).Round(100*time.Millisecond))
	} else {
		b.progress("%s: up to date", ref)
	}
	return nil
}

func (b *builder) progress(format string, args ...any) {
	b.progressMu.Lock()
	defer b.progressMu.Unlock()
	fmt.Fprintf(b.opts.Progress, format+"\n", args...)
}

// native builds eddy/action-native.
func (b *builder) native(ctx context.Context) (string, bool, error) {
	ref := NativeImage + ":latest"
	dockerfile := "FROM scratch\n" + runtimeLayer([]string{"EDDY_LAUNCHER=native"}, nil)
	hash := inputsHash(recipe, Native, b.runtimeID, dockerfile)
	ok, oldID := b.current(ctx, ref, hash)
	if ok {
		return ref, false, nil
	}
	b.progress("%s: building FROM scratch with the runtime binary", ref)
	labels := map[string]string{LabelBuild: hash, "eddy.kind": "native"}
	if err := b.buildImage(ctx, ref, dockerfile, labels); err != nil {
		return ref, false, err
	}
	b.dropOld(ctx, ref, oldID)
	return ref, true, nil
}

// debian builds one Debian-based family: its root file system (when its
// inputs changed) and the runtime image on top of it.
func (b *builder) debian(ctx context.Context, s rootfsSpec) (string, bool, error) {
	base, version, baseID, made, err := b.rootfs(ctx, s)
	if err != nil {
		return "", false, err
	}
	ref := s.repo + ":" + s.tag(version)
	dockerfile := "FROM " + base + "\n" + runtimeLayer(s.env, s.steps)
	parts := []string{recipe, s.family, b.runtimeID, dockerfile, baseID}
	for _, f := range s.files {
		parts = append(parts, f.Name, string(f.Body))
	}
	hash := inputsHash(parts...)
	ok, oldID := b.current(ctx, ref, hash)
	if ok && !made {
		return ref, false, nil
	}
	b.progress("%s: adding the runtime binary to %s (%s %s)", ref, base, s.pkg, version)
	labels := map[string]string{LabelBuild: hash, LabelVersion: version, "eddy.kind": s.kindFamily() + ":" + s.tag(version)}
	if err := b.buildImage(ctx, ref, dockerfile, labels, s.files...); err != nil {
		return ref, false, err
	}
	b.dropOld(ctx, ref, oldID)
	return ref, true, nil
}

// runtimeLayer is the Dockerfile part that adds the runtime server (and
// the family's files under rootfs/), then the family's steps.
func runtimeLayer(env, steps []string) string {
	s := "COPY rootfs/ /\n"
	for _, st := range steps {
		s += st + "\n"
	}
	for _, e := range env {
		s += "ENV " + e + "\n"
	}
	return s + "EXPOSE 8080\nENTRYPOINT [\"/eddy-runtime\", \"--listen\", \":8080\"]\n"
}

// current reports whether ref exists with the build label hash (and Force
// is off); oldID is the id of the image ref names now, if any.
func (b *builder) current(ctx context.Context, ref, hash string) (ok bool, oldID string) {
	got, id, err := b.label(ctx, ref, LabelBuild)
	if err != nil {
		return false, ""
	}
	return !b.opts.Force && got == hash, id
}

// dropOld removes the image ref named before a rebuild, when nothing else
// uses it (errors are ignored: a running container may still use it).
func (b *builder) dropOld(ctx context.Context, ref, oldID string) {
	if oldID == "" {
		return
	}
	if _, id, err := b.label(ctx, ref, LabelBuild); err == nil && id != oldID {
		_, _ = b.cli.ImageRemove(ctx, oldID, image.RemoveOptions{PruneChildren: true})
	}
}

// label returns an image's label and its id; a missing image is an error
// for which cerrdefs.IsNotFound holds.
func (b *builder) label(ctx context.Context, ref, key string) (value, id string, err error) {
	info, err := b.cli.ImageInspect(ctx, ref)
	if err != nil {
		return "", "", err
	}
	if info.Config != nil {
		value = info.Config.Labels[key]
	}
	return value, info.ID, nil
}

func inputsHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// isNotFound reports a missing image.
func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }
