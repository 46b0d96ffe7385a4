package images

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/docker/docker/api/types/image"
)

// rootfs returns the family's root file system image, made anew when its
// inputs changed: debootstrap --variant=minbase with the family's
// packages, cleaned of apt's caches, streamed as a tar into ImageImport.
// version is the upstream version of the family's interpreter package.
func (b *builder) rootfs(ctx context.Context, s rootfsSpec) (ref, version, id string, made bool, err error) {
	ref = "eddy/rootfs-" + s.rootfsName() + ":" + b.suite(s)
	hash := inputsHash(recipe, "rootfs", b.suite(s), "minbase", strings.Join(s.packages, ","))
	got, oldID, err := b.label(ctx, ref, LabelBuild)
	if !b.opts.Force {
		if err == nil && got == hash {
			v, _, err := b.label(ctx, ref, LabelVersion)
			if err == nil && v != "" {
				b.progress("%s: up to date (%s %s)", ref, s.pkg, v)
				return ref, v, oldID, false, nil
			}
		} else if err != nil && !isNotFound(err) {
			return "", "", "", false, err
		}
	}
	if os.Geteuid() != 0 {
		return "", "", "", false, errors.New("making a root file system with debootstrap needs root")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", "", "", false, errors.New("debootstrap is missing: apt-get install -y debootstrap")
	}
	dir, err := os.MkdirTemp(b.opts.WorkDir, "eddy-rootfs-"+s.rootfsName()+"-")
	if err != nil {
		return "", "", "", false, err
	}
	defer func() {
		unmountUnder(dir)
		if rerr := os.RemoveAll(dir); rerr != nil {
			b.progress("%s: could not remove %s: %v", ref, dir, rerr)
		}
	}()

	b.progress("%s: debootstrap --variant=minbase --include=%s %s from %s", ref, strings.Join(s.packages, ","), b.suite(s), b.opts.Mirror)
	if err := b.debootstrap(ctx, dir, s); err != nil {
		return "", "", "", false, err
	}
	version, err = packageVersion(filepath.Join(dir, "var/lib/dpkg/status"), s.pkg)
	if err != nil {
		return "", "", "", false, err
	}
	if err := cleanRootfs(dir); err != nil {
		return "", "", "", false, err
	}
	b.progress("%s: importing the root file system (%s %s)", ref, s.pkg, version)
	if err := b.importDir(ctx, dir, ref, []string{
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"ENV LANG=C.UTF-8",
		"LABEL " + LabelBuild + "=" + hash,
		"LABEL " + LabelVersion + "=" + version,
	}); err != nil {
		return "", "", "", false, fmt.Errorf("import %s: %w", ref, err)
	}
	_, id, err = b.label(ctx, ref, LabelBuild)
	if err != nil {
		return "", "", "", false, err
	}
	// The old root file system goes with the old runtime image that
	// dropOld removes later (PruneChildren removes untagged parents).
	if oldID != "" && oldID != id {
		_, _ = b.cli.ImageRemove(ctx, oldID, image.RemoveOptions{})
	}
	return ref, version, id, true, nil
}

// debootstrap runs debootstrap into dir, each of its output lines a
// progress line.
func (b *builder) debootstrap(ctx context.Context, dir string, s rootfsSpec) error {
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--components=main",
		"--include="+strings.Join(s.packages, ","), b.suite(s), dir, b.opts.Mirror)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var tail []string
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			b.progress("  %s: %s", s.family, sc.Text())
			tail = append(tail, sc.Text())
			if len(tail) > 10 {
				tail = tail[1:]
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	pw.Close()
	<-scanned
	if err != nil {
		return fmt.Errorf("debootstrap: %w\n%s", err, strings.Join(tail, "\n"))
	}
	return nil
}

// cleanRootfs drops what an image does not need: apt's downloaded
// packages and lists, man and info pages.
func cleanRootfs(dir string) error {
	for _, pat := range []string{
		"var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*",
		"usr/share/man/*", "usr/share/info/*", "var/log/*.log",
	} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return err
		}
		for _, p := range m {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// importDir streams dir as a tar into ImageImport as ref.
func (b *builder) importDir(ctx context.Context, dir, ref string, changes []string) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(dir, pw)) }()
	rc, err := b.cli.ImageImport(ctx, image.ImportSource{Source: pr, SourceName: "-"}, ref, image.ImportOptions{Changes: changes})
	if err != nil {
		pr.CloseWithError(err)
		return err
	}
	defer rc.Close()
	err = b.readStream(rc, ref)
	pr.CloseWithError(errors.New("import finished"))
	return err
}

// writeTar writes the tree under dir as a tar with numeric owners, hard
// links kept, and nothing under dev, proc and sys but the directories
// themselves (the container runtime mounts its own).
func writeTar(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	type inode struct{ dev, ino uint64 }
	links := map[inode]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		top, _, nested := strings.Cut(rel, "/")
		if nested && (top == "dev" || top == "proc" || top == "sys") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode()
		if mode&(fs.ModeSocket|fs.ModeNamedPipe|fs.ModeDevice|fs.ModeCharDevice) != 0 {
			return nil
		}
		var target string
		if mode&fs.ModeSymlink != 0 {
			if target, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, target)
		if err != nil {
			return err
		}
		hdr.Name, hdr.Uname, hdr.Gname = rel, "", ""
		if d.IsDir() {
			hdr.Name += "/"
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if st != nil {
			hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
			if mode.IsRegular() && st.Nlink > 1 {
				key := inode{uint64(st.Dev), st.Ino}
				if first, ok := links[key]; ok {
					hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				} else {
					links[key] = rel
				}
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, hdr.Size)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// unmountUnder detaches whatever a failed debootstrap left mounted under
// dir (proc, sys), deepest first, so that removing dir cannot reach into
// them.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}
