package runtime

import (
	"archive/zip"
	"bytes"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

//go:embed launcher.py
var pythonLauncher []byte

//go:embed launcher.js
var nodejsLauncher []byte

// Launcher names.
const (
	LauncherPython   = "python"
	LauncherNodejs   = "nodejs"
	LauncherNative   = "native"
	LauncherSkeleton = "skeleton"
	LauncherGo       = "go"
	LauncherPHP      = "php"
	LauncherRuby     = "ruby"
	LauncherJava     = "java"
)

// Launchers lists the launcher names NewServer accepts.
func Launchers() []string {
	return []string{LauncherPython, LauncherNodejs, LauncherNative, LauncherSkeleton, LauncherGo, LauncherPHP, LauncherRuby, LauncherJava}
}

// command is how to start an action's actionloop child.
type command struct {
	path    string   // program
	args    []string // arguments after the program
	dir     string   // working directory
	env     []string // extra environment on top of server env + init env
	waitAck bool     // the child writes {"ok":true} on fd 3 when ready
	perRun  bool     // no long-lived child: one process per /run (skeleton)
}

// initError is an /init failure with the HTTP status to answer; detail, if
// any, goes to stderr (so it lands in the activation's logs).
type initError struct {
	status int
	msg    string
	detail string
}

func (e *initError) Error() string { return e.msg }

func badRequest(format string, args ...any) *initError {
	return &initError{status: 400, msg: fmt.Sprintf(format, args...)}
}

// msgNoBinary is the Go proxy's generic /init failure.
const msgNoBinary = "The action failed to generate or locate a binary. See logs for details."

// launcher turns an /init payload into the files of an action and the
// command that runs it.
type launcher interface {
	prepare(workDir string, req *initValue, env func(string) string) (*command, error)
}

func newLauncher(name string) (launcher, error) {
	switch name {
	case LauncherPython:
		return pythonLauncherT{}, nil
	case LauncherNodejs:
		return nodejsLauncherT{}, nil
	case LauncherNative:
		return nativeLauncher{}, nil
	case LauncherSkeleton:
		return skeletonLauncher{}, nil
	case LauncherGo:
		return goLauncherT{}, nil
	case LauncherPHP:
		return phpLauncherT{}, nil
	case LauncherRuby:
		return rubyLauncherT{}, nil
	case LauncherJava:
		return javaLauncherT{}, nil
	case "":
		return nil, fmt.Errorf("no launcher given (--launcher or EDDY_LAUNCHER: %s)", strings.Join(Launchers(), ", "))
	default:
		return nil, fmt.Errorf("unknown launcher %q (known: %s)", name, strings.Join(Launchers(), ", "))
	}
}

// actionFiles decodes the code of req into dir: a zip is extracted; anything
// else is written to dir/single. It reports whether it was a zip.
func actionFiles(dir string, req *initValue, single string, mode os.FileMode) (isZip bool, err error) {
	if err := os.RemoveAll(dir); err != nil {
		return false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	data := []byte(req.Code)
	if req.Binary {
		data, err = base64.StdEncoding.DecodeString(strings.TrimSpace(req.Code))
		if err != nil {
			return false, badRequest("The action code is not valid base64: %v", err)
		}
	}
	if bytes.HasPrefix(data, []byte("PK\x03\x04")) {
		if err := unzip(data, dir); err != nil {
			return true, &initError{status: 502, msg: msgNoBinary, detail: "cannot extract the action's zip: " + err.Error()}
		}
		return true, nil
	}
	return false, os.WriteFile(filepath.Join(dir, single), data, mode)
}

// unzip extracts a zip archive into dir, refusing entries that leave dir and
// skipping symbolic links.
func unzip(data []byte, dir string) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return err
	}
	for _, f := range zr.File {
		name := filepath.FromSlash(f.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("entry %q is outside the action directory", f.Name)
		}
		target := filepath.Join(dir, name)
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			continue
		case mode&os.ModeSymlink != 0:
			continue
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		perm := mode.Perm() | 0o600
		if err := extractOne(f, target, perm); err != nil {
			return err
		}
	}
	return nil
}

func extractOne(f *zip.File, target string, perm os.FileMode) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	w, err := os.OpenFile(target, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, rc); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// pythonLauncherT runs Python source (or a zip with __main__.py) with the
// embedded launcher.py; the child always acknowledges start-up.
type pythonLauncherT struct{}

func (pythonLauncherT) prepare(workDir string, req *initValue, env func(string) string) (*command, error) {
	dir := filepath.Join(workDir, "action")
	isZip, err := actionFiles(dir, req, "__main__.py", 0o644)
	if err != nil {
		return nil, err
	}
	if isZip {
		if _, err := os.Stat(filepath.Join(dir, "__main__.py")); err != nil {
			return nil, &initError{status: 502, msg: "Zip file does not include __main__.py"}
		}
	}
	lp := filepath.Join(workDir, "launcher.py")
	if err := os.WriteFile(lp, pythonLauncher, 0o644); err != nil {
		return nil, err
	}
	py := env("EDDY_PYTHON")
	if py == "" {
		py = "python3"
	}
	main := req.Main
	if main == "" {
		main = "main"
	}
	return &command{
		path:    py,
		args:    []string{"-B", lp, dir, main},
		dir:     dir,
		env:     []string{"PYTHONIOENCODING=utf-8"},
		waitAck: true,
	}, nil
}

// nodejsLauncherT runs JavaScript source (or a zip whose package.json
// "main", else index.js, is the entry point) with the embedded launcher.js
// and the node of EDDY_NODE (default "node" from PATH); the child always
// acknowledges start-up.
type nodejsLauncherT struct{}

// msgNodeZip is OpenWhisk's Node.js runtime's complaint about a zip without
// an entry point.
const msgNodeZip = "Zipped actions must contain either package.json or index.js at the root."

// jsIdent matches the main names that may be looked up as a global of plain
// source.
var jsIdent = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

func (nodejsLauncherT) prepare(workDir string, req *initValue, env func(string) string) (*command, error) {
	dir := filepath.Join(workDir, "action")
	isZip, err := actionFiles(dir, req, "index.js", 0o644)
	if err != nil {
		return nil, err
	}
	main := req.Main
	if main == "" {
		main = "main"
	}
	if isZip {
		_, errPkg := os.Stat(filepath.Join(dir, "package.json"))
		_, errIdx := os.Stat(filepath.Join(dir, "index.js"))
		if errPkg != nil && errIdx != nil {
			return nil, &initError{status: 502, msg: msgNodeZip}
		}
	} else if jsIdent.MatchString(main) {
		// Plain source may declare "function main" without exporting it:
		// export it from inside the module, where the name is in scope
		// (eval, so that a reserved word cannot break the source).
		quoted, _ := json.Marshal(main)
		trailer := fmt.Sprintf("\n;try{if(typeof module.exports[%[1]s]!==\"function\"){const f=eval(%[1]s);if(typeof f===\"function\")module.exports[%[1]s]=f}}catch(e){}\n", quoted)
		f, err := os.OpenFile(filepath.Join(dir, "index.js"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		_, err = io.WriteString(f, trailer)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	lp := filepath.Join(workDir, "launcher.js")
	if err := os.WriteFile(lp, nodejsLauncher, 0o644); err != nil {
		return nil, err
	}
	node := env("EDDY_NODE")
	if node == "" {
		node = "node"
	}
	return &command{
		path:    node,
		args:    []string{lp, dir, main},
		dir:     dir,
		waitAck: true,
	}, nil
}

// nativeLauncher runs an executable: base64 of a binary, a base64 zip with
// an executable "exec", or a script with a shebang. As OpenWhisk's Go proxy,
// it waits for the child's acknowledgement only when OW_WAIT_FOR_ACK is set
// in the server's environment, and then tells the child with
// __OW_WAIT_FOR_ACK=1.
type nativeLauncher struct{}

func (nativeLauncher) prepare(workDir string, req *initValue, env func(string) string) (*command, error) {
	dir := filepath.Join(workDir, "action")
	if _, err := actionFiles(dir, req, "exec", 0o755); err != nil {
		return nil, err
	}
	exe := filepath.Join(dir, "exec")
	st, err := os.Stat(exe)
	if err != nil || !st.Mode().IsRegular() {
		return nil, &initError{status: 502, msg: msgNoBinary, detail: "the action has no file named exec"}
	}
	if st.Mode().Perm()&0o111 == 0 {
		if err := os.Chmod(exe, st.Mode().Perm()|0o755); err != nil {
			return nil, err
		}
	}
	c := &command{path: exe, dir: dir}
	if env("OW_WAIT_FOR_ACK") != "" {
		c.waitAck = true
		c.env = append(c.env, "__OW_WAIT_FOR_ACK=1")
	}
	return c, nil
}
