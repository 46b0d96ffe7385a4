package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"

	"github.com/eddy-faas/eddy/internal/container/docker"
)

// buildImage builds ref from dockerfile with a context of the Dockerfile,
// rootfs/eddy-runtime and an empty rootfs/tmp (mode 1777), streaming the
// build's steps to the progress writer.
func (b *builder) buildImage(ctx context.Context, ref, dockerfile string, labels map[string]string, extra ...File) error {
	files := append([]File{{Name: "rootfs/eddy-runtime", Mode: 0o755, Body: b.runtime}}, extra...)
	return BuildContext(ctx, b.cli, ref, dockerfile, files, labels, b.opts.Force, func(r io.Reader) error {
		return b.readStream(r, ref)
	})
}

// File is one file of a build context.
type File struct {
	Name string
	Mode int64
	Body []byte
}

// BuildContext builds ref on the daemon from dockerfile and a context of
// files plus empty rootfs/ and rootfs/tmp/ (mode 1777) directories, so
// that "COPY rootfs/ /" makes a FROM scratch image with a usable /tmp.
// progress reads the daemon's build stream (docker.ReadStream when nil).
func BuildContext(ctx context.Context, cli *client.Client, ref, dockerfile string, files []File, labels map[string]string, noCache bool, progress func(io.Reader) error) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []File{
		{Name: "Dockerfile", Mode: 0o644, Body: []byte(dockerfile)},
		{Name: "rootfs/", Mode: 0o755},
		{Name: "rootfs/tmp/", Mode: 0o1777},
	}
	for _, f := range append(entries, files...) {
		hdr := tar.Header{Name: f.Name, Mode: f.Mode, Size: int64(len(f.Body)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(f.Name, "/") {
			hdr.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.Body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags: []string{ref}, Labels: labels, Remove: true, ForceRemove: true, NoCache: noCache,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if progress == nil {
		return docker.ReadStream(resp.Body, nil)
	}
	return progress(resp.Body)
}

// readStream reads an Engine progress stream (build, import), forwards
// its text to the progress writer and returns the first error it reports.
func (b *builder) readStream(r io.Reader, prefix string) error {
	return docker.ReadStream(r, func(text string) {
		for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "--->") && !strings.HasPrefix(line, "Removing intermediate") {
				b.progress("  %s: %s", prefix, line)
			}
		}
	})
}

// SystemMirror is the first Debian mirror (a URI ending in /debian) that
// /etc/apt/sources.list or /etc/apt/sources.list.d names, in either the
// one-line or the deb822 format; DefaultMirror when there is none.
func SystemMirror() string {
	files := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.sources", "/etc/apt/sources.list.d/*.list"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	for _, f := range files {
		if u := mirrorIn(f); u != "" {
			return u
		}
	}
	return DefaultMirror
}

func mirrorIn(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var uris []string
		switch {
		case strings.HasPrefix(line, "URIs:"):
			uris = strings.Fields(strings.TrimPrefix(line, "URIs:"))
		case strings.HasPrefix(line, "deb "):
			fields := strings.Fields(line)[1:]
			if len(fields) > 0 && strings.HasPrefix(fields[0], "[") {
				for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
					fields = fields[1:]
				}
				if len(fields) > 0 {
					fields = fields[1:]
				}
			}
			if len(fields) > 0 {
				uris = fields[:1]
			}
		}
		for _, u := range uris {
			if strings.HasSuffix(strings.TrimSuffix(u, "/"), "/debian") {
				return strings.TrimSuffix(u, "/")
			}
		}
	}
	return ""
}
